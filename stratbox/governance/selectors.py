"""Reads for governance: the approval binding (config hash), the live-approval check, lists.

`live_approval_is_current` is the function the trading risk gate calls (registered in
`GovernanceConfig.ready`): an instance may trade live only while an approved, unrevoked request
names it as its live instance, on its own account, for its current version id and the hash of its
current config + capital allocation + frequency.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from decimal import Decimal
from typing import Any

from django.db.models import Case, Q, QuerySet, Value, When

from stratbox.backtests.models import Backtest
from stratbox.governance.models import (
    DEFAULT_MAX_DRAWDOWN,
    DEFAULT_MIN_PNL,
    DEFAULT_MIN_TRADES,
    DEFAULT_MIN_WIN_RATE,
    GraduationPolicy,
    LiveApprovalRequest,
    RequestStatus,
)
from stratbox.instances.models import StrategyInstance
from tenants.models import Tenant

# What an approval covers besides the code version (name and mode deliberately excluded).
BOUND_FIELDS = (
    "total_capital",
    "capital_per_trade",
    "max_positions",
    "max_position_size",
    "max_daily_loss",
    "sizing_method",
    "frequency_seconds",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.quantize(Decimal("0.01")))
    return value


def instance_bound_config(instance: StrategyInstance) -> dict[str, Any]:
    """The part of an instance an approval is bound to (besides `version_id`), JSON-safe."""
    return {
        "config": instance.config,
        **{name: _canonical(getattr(instance, name)) for name in BOUND_FIELDS},
    }


def config_hash(bound: dict[str, Any]) -> str:
    payload = json.dumps(bound, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def instance_config_hash(instance: StrategyInstance) -> str:
    return config_hash(instance_bound_config(instance))


def live_approval_is_current(instance: StrategyInstance) -> bool:
    """The risk gate's checker: a current approval for exactly this instance, version and config."""
    return LiveApprovalRequest.objects.filter(
        status=RequestStatus.APPROVED,
        revoked_at__isnull=True,
        live_instance_id=instance.pk,
        tenant_id=instance.tenant_id,
        live_account_id=instance.account_id,
        version_id=instance.version_id,
        config_hash=instance_config_hash(instance),
    ).exists()


def live_approval_for(instance: StrategyInstance) -> LiveApprovalRequest | None:
    """The latest approved (or revoked) request that created this live instance, if any."""
    return (
        LiveApprovalRequest.objects.filter(live_instance_id=instance.pk)
        .exclude(status__in=[RequestStatus.PENDING, RequestStatus.REJECTED])
        .order_by("-decided_at")
        .first()
    )


def graduation_policy_for(tenant: Tenant) -> GraduationPolicy:
    """The tenant's policy, or an unsaved one holding seed 002's defaults."""
    policy = GraduationPolicy.objects.filter(tenant=tenant).first()
    if policy is not None:
        return policy
    return GraduationPolicy(
        tenant=tenant,
        min_trades=DEFAULT_MIN_TRADES,
        min_win_rate=DEFAULT_MIN_WIN_RATE,
        min_pnl=DEFAULT_MIN_PNL,
        max_drawdown=DEFAULT_MAX_DRAWDOWN,
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _requests() -> QuerySet[LiveApprovalRequest]:
    return LiveApprovalRequest.objects.select_related(
        "tenant",
        "instance",
        "live_account",
        "version__definition",
        "live_instance",
        "requested_by",
        "decided_by",
    )


# --- tenant-facing (always scoped) ---------------------------------------------------------


def live_request_list(
    *, tenant: Tenant, filters: dict[str, Any] | None = None
) -> QuerySet[LiveApprovalRequest]:
    qs = _requests().filter(tenant=tenant)
    filters = filters or {}
    if filters.get("status") in RequestStatus.values:
        qs = qs.filter(status=filters["status"])
    instance_id = _uuid(filters.get("instance")) if filters.get("instance") else None
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    return qs


def live_request_latest(*, tenant: Tenant, instance: StrategyInstance) -> LiveApprovalRequest | None:
    """The newest request the instance took part in: as the paper instance, or as the live one it created."""
    return (
        _requests()
        .filter(tenant=tenant)
        .filter(Q(instance_id=instance.pk) | Q(live_instance_id=instance.pk))
        .order_by("-requested_at")
        .first()
    )


def live_request_get(*, tenant: Tenant, request_id: Any) -> LiveApprovalRequest | None:
    pk = _uuid(request_id)
    return _requests().filter(tenant=tenant, pk=pk).first() if pk else None


# --- staff (cross-tenant by design; the API checks is_staff) -------------------------------


def staff_live_request_list(*, status: str | None = None) -> QuerySet[LiveApprovalRequest]:
    qs = _requests()
    if status in RequestStatus.values:
        qs = qs.filter(status=status)
    return qs


def staff_live_request_get(*, request_id: Any) -> LiveApprovalRequest | None:
    pk = _uuid(request_id)
    return _requests().filter(pk=pk).first() if pk else None


def backtests_for(request: LiveApprovalRequest, limit: int = 20) -> list[Any]:
    """The tenant's backtests of the requested code version (the staff reviewer's evidence)."""
    return list(
        Backtest.objects.filter(tenant_id=request.tenant_id, version_id=request.version_id).order_by(
            "-created_at"
        )[:limit]
    )


def staff_live_request_queue(*, status: str | None = None) -> QuerySet[LiveApprovalRequest]:
    """The staff page's queue: pending requests first (oldest first: first come, first reviewed),
    then every decided one, newest first."""
    pending_first = Case(When(status=RequestStatus.PENDING, then=Value(0)), default=Value(1))
    return (
        staff_live_request_list(status=status)
        .annotate(queue_rank=pending_first)
        .order_by(
            "queue_rank", Case(When(status=RequestStatus.PENDING, then="requested_at")), "-requested_at"
        )
    )
