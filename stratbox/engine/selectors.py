"""Reads of the engine: runtime status and execution history, and the tick path's instance loader.

Every selector serving a request takes the tenant; the loader (`tick_instances`, `tick_instance`)
is the engine's own trusted read of an instance by id, for the tick path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import django_filters
from django.db.models import QuerySet

from stratbox.engine import runtime
from stratbox.engine.models import (
    AccountReconcile,
    InstanceStats,
    Run,
    RunStatus,
    RunTrigger,
    VenueDiscrepancy,
)
from stratbox.engine.snapshots import STAT_FIELDS, stats_live
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.trading.models import Account
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


def venue_discrepancy_list(*, tenant: Tenant, account_id: Any = None) -> QuerySet[VenueDiscrepancy]:
    """The tenant's venue discrepancies, newest first (of one of its accounts, when given)."""
    queryset = VenueDiscrepancy.objects.filter(tenant=tenant)
    if account_id not in (None, ""):
        try:
            account_uuid = uuid.UUID(str(account_id))
        except ValueError as exc:
            raise ApplicationError("invalid", "Not an account id.", field="account") from exc
        queryset = queryset.filter(account_id=account_uuid)
    return queryset


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
