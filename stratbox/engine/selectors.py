"""Reads of the engine: runtime status and execution history, and the tick path's instance loader.

Every selector serving a request takes the tenant; the loader (`tick_instances`, `tick_instance`)
is the engine's own trusted read of an instance by id, for the tick path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet

from stratbox.engine import runtime
from stratbox.engine.models import (
    AccountReconcile,
    DiscrepancyKind,
    InstanceStats,
    Run,
    RunStatus,
    RunTrigger,
    VenueDiscrepancy,
)
from stratbox.engine.snapshots import STAT_FIELDS, stats_live
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.models import FeedSource
from stratbox.trading.models import Account, AccountKind, Order
from stratbox.trading.venue_streams import user_stream_health
from stratbox.venues.health import QUOTE_STREAM_KEY, health_read, stream_state
from stratbox.venues.registry import venue_describe
from tenants.errors import ApplicationError
from tenants.models import Tenant


def tick_instances() -> QuerySet[StrategyInstance]:
    """Instance rows as the tick path reads them (tenant, market, account and version joined)."""
    # The version's source is only needed when a host must (re)load the instance: fetched lazily then.
    return StrategyInstance.objects.select_related(
        "version__definition", "tenant", "market", "account"
    ).defer("version__source", "version__exit_source", "version__validation_report")


def tick_instance(iid: str) -> StrategyInstance | None:
    return tick_instances().filter(pk=iid).first()


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat() if ts else None


def instance_stats(*, instance: StrategyInstance) -> dict[str, Any]:
    """Rolled-up counters plus the deltas still in Redis: exact, whatever the sampling kept."""
    stored = InstanceStats.objects.filter(instance_id=instance.pk).first()
    live = stats_live(str(instance.pk))
    out: dict[str, Any] = {
        name: (getattr(stored, name) if stored else 0) + live[name] for name in STAT_FIELDS
    }
    live_last = runtime.r().hget(runtime.stats_key(str(instance.pk)), "last_run_at")
    last = stored.last_run_at if stored else None
    if live_last:
        live_dt = datetime.fromtimestamp(float(live_last), tz=UTC)
        last = max(last, live_dt) if last else live_dt
    out["last_run_at"] = last.isoformat() if last else None
    return out


def runtime_status(*, instance: StrategyInstance) -> dict[str, Any]:
    rt = runtime.rt_get(str(instance.pk)) or {}
    loaded = bool(rt.get("loaded")) and instance.mode != Mode.OFF
    error = rt.get("last_error")
    if error and error.get("at"):
        error = {**error, "at": _iso(error["at"])}
    return {
        "instance_id": str(instance.pk),
        "mode": instance.mode,
        "loaded": loaded,
        "paused": bool(rt.get("paused")) if loaded else False,
        "pause_reason": rt.get("pause_reason") if loaded else None,
        "kill_switch": instance.tenant.killed_at is not None,
        "last_tick_at": _iso(rt.get("last_tick_at")),
        "last_error": error,
        "next_due_at": _iso(rt.get("next_due_at")) if loaded and not rt.get("paused") else None,
        "worker": rt.get("worker") or None,
        "consecutive_failures": rt.get("consecutive_failures") or 0,
        "coalesced_ticks": rt.get("coalesced_ticks") or 0,
        "fingerprint": rt.get("fingerprint") or None,
        "state_rev": rt.get("state_rev") or 0,
        "tick_seq": rt.get("tick_seq") or None,
        "frequency_seconds": instance.frequency_seconds,
        "trigger": instance.trigger,
        "stats": instance_stats(instance=instance),
    }


class RunFilter(django_filters.FilterSet):
    instance = django_filters.UUIDFilter(field_name="instance_id")
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=RunTrigger.choices)
    has_actions = django_filters.BooleanFilter(method="filter_has_actions")

    class Meta:
        model = Run
        fields = ["instance", "status", "trigger"]

    def filter_has_actions(self, queryset: QuerySet[Run], name: str, value: bool | None) -> QuerySet[Run]:
        if value is None:
            return queryset
        return queryset.exclude(actions=[]) if value else queryset.filter(actions=[])


def run_list(*, tenant: Tenant, filters: Mapping[str, Any] | None = None) -> QuerySet[Run]:
    queryset = Run.objects.filter(tenant=tenant).select_related("version")
    if not filters:
        return queryset
    filterset = RunFilter(data=filters, queryset=queryset)
    if not filterset.is_valid():
        raise ApplicationError(errors={field: list(messages) for field, messages in filterset.errors.items()})
    return filterset.qs


def run_get(*, tenant: Tenant, run_id: Any) -> Run | None:
    try:
        pk = int(run_id)
    except (TypeError, ValueError):
        return None
    return Run.objects.filter(tenant=tenant, pk=pk).select_related("version").first()


class VenueDiscrepancyFilter(django_filters.FilterSet):
    account = django_filters.UUIDFilter(field_name="account_id")
    kind = django_filters.ChoiceFilter(choices=DiscrepancyKind.choices)

    class Meta:
        model = VenueDiscrepancy
        fields = ["account", "kind"]


def venue_discrepancy_list(
    *, tenant: Tenant, filters: Mapping[str, Any] | None = None
) -> QuerySet[VenueDiscrepancy]:
    """The tenant's venue discrepancies, newest first (of one of its accounts, of one kind)."""
    queryset = VenueDiscrepancy.objects.filter(tenant=tenant)
    if not filters:
        return queryset
    filterset = VenueDiscrepancyFilter(data=filters, queryset=queryset)
    if not filterset.is_valid():
        raise ApplicationError(errors={field: list(messages) for field, messages in filterset.errors.items()})
    return filterset.qs


def account_reconcile_get(
    *, tenant: Tenant, account_id: Any
) -> tuple[Account, AccountReconcile | None] | None:
    """A live account of the tenant and its last venue reconcile (None: no such account here)."""
    try:
        account_uuid = uuid.UUID(str(account_id))
    except ValueError:
        return None
    account = Account.objects.filter(tenant=tenant, pk=account_uuid).first()
    if account is None:
        return None
    return account, AccountReconcile.objects.filter(account=account).first()


@dataclass
class LiveAccountVenue:
    """What the live-account page and API show: the account, its venue as the reconciler last saw it
    (balances, positions, result), the discrepancies and what was done, the live orders with their
    venue ids, and the user stream's health. Nothing here asks the venue."""

    account: Account
    venue: dict[str, Any]
    reconcile: AccountReconcile | None
    discrepancies: list[VenueDiscrepancy]
    orders: list[Order]
    user_stream: dict[str, Any]


def live_account_get(*, tenant: Tenant, account_id: Any) -> Account | None:
    """A live account of the tenant (None: no such account here, or a paper one)."""
    try:
        account_uuid = uuid.UUID(str(account_id))
    except ValueError:
        return None
    return Account.objects.filter(tenant=tenant, pk=account_uuid, kind=AccountKind.LIVE).first()


def account_venue_get(*, tenant: Tenant, account_id: Any, limit: int = 50) -> LiveAccountVenue | None:
    """An account of the tenant at its venue (None: no such account here). A paper account has no
    venue: it is described as the built-in simulated broker, with nothing reconciled."""
    try:
        account = Account.objects.filter(tenant=tenant, pk=uuid.UUID(str(account_id))).first()
    except ValueError:
        return None
    if account is None:
        return None
    if account.kind != AccountKind.LIVE:
        paper = {"broker": "", "label": "Paper (the built-in simulated broker)", "environment": "paper"}
        return LiveAccountVenue(account, {**paper, "simulated": True}, None, [], [], stream_state(None))
    orders = list(
        Order.objects.filter(tenant=tenant, account=account, is_shadow=False)
        .select_related("market", "instance")
        .order_by("-created_at", "-id")[:limit]
    )
    return LiveAccountVenue(
        account=account,
        venue=venue_describe(account.broker),
        reconcile=AccountReconcile.objects.filter(account=account).first(),
        discrepancies=list(VenueDiscrepancy.objects.filter(tenant=tenant, account=account)[:limit]),
        orders=orders,
        user_stream=stream_state(user_stream_health(account.pk)),
    )


def instance_venue_panel(*, tenant: Tenant, instance: StrategyInstance) -> dict[str, Any] | None:
    """The venue card of an instance on a live account: the account's user stream (its orders and
    fills), the instance market's quote stream, and the account's last reconcile (None: paper)."""
    account = instance.account
    if account.tenant_id != tenant.pk or account.kind != AccountKind.LIVE:
        return None
    market = instance.market
    return {
        "account": account,
        "venue": venue_describe(account.broker),
        "reconcile": AccountReconcile.objects.filter(account=account).first(),
        "user_stream": stream_state(user_stream_health(account.pk)),
        "quote_stream": stream_state(health_read(QUOTE_STREAM_KEY.format(venue=market.venue)))
        if market.feed == FeedSource.VENUE
        else None,
    }
