"""Writes for governance: graduation, live-trading requests, staff approval, rejection, revocation.

The flow (docs/governance.md):
1. A tenant (owner/member) requests live trading for a *paper* instance, naming one of its *live*
   accounts. The paper track record is scored against the tenant's graduation policy; unmet
   criteria refuse the request (400, each criterion a code + message). Otherwise a pending
   `LiveApprovalRequest` enters the staff queue with snapshots of the version, config and record.
2. Staff approve (a new instance is created on the live account with the same version + config,
   in observe mode; the approval is bound to it, its version and its config hash) or reject,
   with a reason.
3. The tenant may then activate the live instance; the risk gate lets its orders through only
   while the approval is current. Any change of config, allocation or frequency, or a revocation,
   makes every order NOT_APPROVED again. Revocation also pauses the instance at once (engine).
Every step lands in the audit log; decisions are pushed to the dashboard as instance events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from stratbox.engine import events
from stratbox.engine.services import EngineRuleError, PauseReason, instance_pause
from stratbox.governance.models import GraduationPolicy, LiveApprovalRequest, RequestStatus
from stratbox.governance.selectors import (
    graduation_policy_for,
    instance_bound_config,
    instance_config_hash,
)
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.instances.services import instance_create, instance_set_mode
from stratbox.trading.models import Account, AccountKind
from stratbox.trading.track_record import TrackRecord, instance_track_record
from tenants.errors import ApplicationError, Conflict, ErrorMessage, Forbidden
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)
REVOKE_PAUSE_REASON = PauseReason.APPROVAL_REVOKED


class GovernanceConflict(Conflict):
    """The request's state forbids the action (HTTP 409); `code` is an UPPER_SNAKE reason."""


# --- graduation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    code: str  # the UPPER_SNAKE code shown when unmet
    met: bool
    message: str
    actual: str | None
    threshold: str

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "met": self.met,
            "message": self.message,
            "actual": self.actual,
            "threshold": self.threshold,
        }


def _pct(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value.quantize(Decimal('0.01'))} %"


def graduation_evaluate(record: TrackRecord, policy: GraduationPolicy) -> list[Criterion]:
    """Every criterion with its result. Exact Decimal comparisons: nothing is rounded first."""
    win_rate = record.win_rate
    return [
        Criterion(
            "TOO_FEW_TRADES",
            record.trades >= policy.min_trades,
            f"{record.trades} closed paper trades; at least {policy.min_trades} are needed.",
            str(record.trades),
            f">= {policy.min_trades}",
        ),
        Criterion(
            "WIN_RATE_TOO_LOW",
            win_rate is not None and win_rate > policy.min_win_rate,
            f"win rate {_pct(win_rate)}; it must be above {_pct(policy.min_win_rate)}.",
            None if win_rate is None else str(win_rate.quantize(Decimal("0.01"))),
            f"> {policy.min_win_rate}",
        ),
        Criterion(
            "PNL_NOT_POSITIVE" if policy.min_pnl == 0 else "PNL_TOO_LOW",
            record.pnl > policy.min_pnl,
            f"paper P&L {record.pnl.quantize(Decimal('0.01'))}; it must be above {policy.min_pnl}.",
            str(record.pnl.quantize(Decimal("0.01"))),
            f"> {policy.min_pnl}",
        ),
        Criterion(
            "DRAWDOWN_TOO_HIGH",
            record.max_drawdown < policy.max_drawdown,
            f"max drawdown {_pct(record.max_drawdown)}; it must be below {_pct(policy.max_drawdown)}.",
            str(record.max_drawdown.quantize(Decimal("0.01"))),
            f"< {policy.max_drawdown}",
        ),
    ]


def policy_as_json(policy: GraduationPolicy) -> dict[str, Any]:
    return {
        "min_trades": policy.min_trades,
        "min_win_rate": str(policy.min_win_rate),
        "min_pnl": str(policy.min_pnl),
        "max_drawdown": str(policy.max_drawdown),
        "tenant_specific": policy.pk is not None,
    }


def instance_graduation(instance: StrategyInstance) -> dict[str, Any]:
    """The paper record, the shadow record (informational) and the criteria for `instance`."""
    paper = instance_track_record(instance=instance)
    shadow = instance_track_record(instance=instance, shadow=True)
    policy = graduation_policy_for(instance.tenant)
    criteria = graduation_evaluate(paper, policy) if instance.account.kind == AccountKind.PAPER else []
    return {
        "ledger": paper.ledger,
        "record": paper.as_json(),
        "shadow_record": shadow.as_json(),
        "policy": policy_as_json(policy),
        "criteria": [c.as_json() for c in criteria],
        "eligible": bool(criteria) and all(c.met for c in criteria),
    }


# --- the tenant's request -------------------------------------------------------------------


def _publish(request: LiveApprovalRequest, instance_id: Any) -> None:
    """Tell the dashboard (after commit) that a request about this instance changed."""
    if instance_id is None:
        return

    events.publish(
        tenant_id=request.tenant_id,
        instance_id=instance_id,
        kind="status",
        data={
            "live_request": {
                "id": str(request.pk),
                "status": request.status,
                "reason": request.revoke_reason or request.decision_reason,
                "live_instance_id": str(request.live_instance_id) if request.live_instance_id else None,
            }
        },
    )


def _refuse(errors: dict[str, list[ErrorMessage]]) -> ApplicationError:
    return ApplicationError(errors=errors)


def live_request_create(
    *, tenant: Tenant, actor: Any, instance: StrategyInstance, live_account_id: Any, note: str = ""
) -> LiveApprovalRequest:
    """Ask staff to let `instance`'s version + config trade on a live account.

    Refused (400) unless the instance is a paper instance, the account is one of the tenant's live
    accounts and every graduation criterion is met (each unmet one listed as `criteria` with its
    code); 409 REQUEST_PENDING when a request for the instance is already in the queue. A refusal
    for unmet criteria is audited too.
    """
    if instance.tenant_id != tenant.pk:
        raise Forbidden(message="Not your instance.")  # the API's selector already made this a 404
    if instance.account.kind != AccountKind.PAPER:
        raise _refuse(
            {
                "instance": [
                    ErrorMessage(
                        "Only a paper instance can earn live trading: its paper track record is the evidence.",
                        code="NOT_A_PAPER_INSTANCE",
                    )
                ]
            }
        )
    account = Account.objects.filter(tenant=tenant, pk=live_account_id, kind=AccountKind.LIVE).first()
    if account is None:
        raise _refuse({"live_account": [ErrorMessage("Unknown live account.", code="invalid")]})

    record = instance_track_record(instance=instance)
    shadow = instance_track_record(instance=instance, shadow=True)
    policy = graduation_policy_for(tenant)
    criteria = graduation_evaluate(record, policy)
    unmet = [c for c in criteria if not c.met]
    if unmet:
        audit_record(
            tenant=tenant,
            actor=actor,
            action="live_request.refused",
            target=instance,
            after={
                "live_account_id": str(account.pk),
                "unmet": [c.code for c in unmet],
                "policy": policy_as_json(policy),
            },
        )
        raise _refuse({"criteria": [ErrorMessage(c.message, code=c.code) for c in unmet]})

    bound = instance_bound_config(instance)
    with transaction.atomic():
        locked = StrategyInstance.objects.select_for_update().get(pk=instance.pk)
        if LiveApprovalRequest.objects.filter(instance=locked, status=RequestStatus.PENDING).exists():
            raise GovernanceConflict(
                "REQUEST_PENDING", "A live-trading request for this instance is already waiting for staff."
            )
        try:
            with transaction.atomic():
                request = LiveApprovalRequest.objects.create(
                    tenant=tenant,
                    instance=locked,
                    instance_name=locked.name,
                    live_account=account,
                    version_id=locked.version_id,
                    config=bound,
                    config_hash=instance_config_hash(locked),
                    track_record={"paper": record.as_json(), "shadow": shadow.as_json(curve=False)},
                    criteria={"policy": policy_as_json(policy), "results": [c.as_json() for c in criteria]},
                    note=note,
                    requested_by=actor if getattr(actor, "is_authenticated", False) else None,
                )
        except IntegrityError as exc:  # the partial unique index: a concurrent duplicate
            raise GovernanceConflict(
                "REQUEST_PENDING", "A live-trading request for this instance is already waiting for staff."
            ) from exc
        audit_record(
            tenant=tenant,
            actor=actor,
            action="live_request.create",
            target=request,
            after={
                "instance_id": str(locked.pk),
                "live_account_id": str(account.pk),
                "version_id": str(locked.version_id),
                "config_hash": request.config_hash,
                "trades": record.trades,
                "win_rate": record.as_json()["win_rate"],
                "pnl": str(record.pnl),
                "max_drawdown": record.as_json()["max_drawdown"],
            },
        )
        _publish(request, locked.pk)
    return request


# --- staff decisions --------------------------------------------------------------------------


def _require_staff(actor: Any) -> None:
    if not (getattr(actor, "is_authenticated", False) and getattr(actor, "is_staff", False)):
        raise Forbidden(message="Only staff may decide live-trading requests.")


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("required", "A reason is required.", field="reason")
    return reason[:500]


def _lock_request(request: LiveApprovalRequest) -> LiveApprovalRequest:
    return LiveApprovalRequest.objects.select_for_update().get(pk=request.pk)


def _decision_json(request: LiveApprovalRequest) -> dict[str, Any]:
    return {
        "status": request.status,
        "reason": request.revoke_reason or request.decision_reason,
        "live_instance_id": str(request.live_instance_id) if request.live_instance_id else None,
        "version_id": str(request.version_id),
        "config_hash": request.config_hash,
    }


def _expect_status(locked: LiveApprovalRequest, status: str, code: str) -> None:
    if locked.status != status:
        raise GovernanceConflict(code, f"The request is {locked.status}, not {status}.")


def _record_decision(
    locked: LiveApprovalRequest, *, actor: Any, action: str, before: str, **changes: Any
) -> None:
    """Apply a staff decision to the locked request, save it and audit it (inside the caller's
    transaction)."""
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save()
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action=action,
        target=locked,
        before={"status": before},
        after=_decision_json(locked),
    )


def live_request_approve(
    *, request: LiveApprovalRequest, actor: Any, reason: str = ""
) -> LiveApprovalRequest:
    """Approve a pending request: create the live instance (observe) and bind the approval to it.

    409 REQUEST_NOT_PENDING if already decided; 409 REQUEST_STALE if the paper instance is gone or
    its version/config changed since the request (staff would approve something they did not see).
    """
    _require_staff(actor)
    with transaction.atomic():
        locked = _lock_request(request)
        _expect_status(locked, RequestStatus.PENDING, "REQUEST_NOT_PENDING")
        paper = (
            StrategyInstance.objects.select_for_update(of=("self",))
            .select_related("strategy", "version", "tenant")
            .filter(pk=locked.instance_id)
            .first()
        )
        if (
            paper is None
            or paper.version_id != locked.version_id
            or instance_config_hash(paper) != locked.config_hash
        ):
            raise GovernanceConflict(
                "REQUEST_STALE",
                "The paper instance changed (or was deleted) since the request; reject it and let "
                "the tenant request again.",
            )
        account = Account.objects.filter(pk=locked.live_account_id, tenant_id=locked.tenant_id).first()
        if account is None or account.kind != AccountKind.LIVE:
            raise GovernanceConflict("REQUEST_STALE", "The live account is no longer usable.")
        live = instance_create(
            tenant=paper.tenant,
            actor=actor,
            name=f"{paper.name} (live)"[:120],
            strategy_key=paper.strategy.key,
            version_number=paper.version.number,
            account_id=account.pk,
            market_id=paper.market_id,
            config=paper.config,
            total_capital=paper.total_capital,
            capital_per_trade=paper.capital_per_trade,
            max_positions=paper.max_positions,
            max_position_size=paper.max_position_size,
            max_daily_loss=paper.max_daily_loss,
            sizing_method=paper.sizing_method,
            frequency_seconds=paper.frequency_seconds,
            trigger=paper.trigger,
            mode=Mode.OBSERVE,
        )
        if live.version_id != locked.version_id or instance_config_hash(live) != locked.config_hash:
            # Defensive: never bind an approval to something other than what was reviewed.
            raise GovernanceConflict(
                "REQUEST_STALE", "The live instance would differ from the reviewed version/config."
            )
        _record_decision(
            locked,
            actor=actor,
            action="live_request.approve",
            before=RequestStatus.PENDING,
            status=RequestStatus.APPROVED,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_reason=(reason or "").strip()[:500],
            live_instance=live,
        )
        _publish(locked, locked.instance_id)
        _publish(locked, live.pk)
    return locked


def live_request_reject(*, request: LiveApprovalRequest, actor: Any, reason: str) -> LiveApprovalRequest:
    _require_staff(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _lock_request(request)
        _expect_status(locked, RequestStatus.PENDING, "REQUEST_NOT_PENDING")
        _record_decision(
            locked,
            actor=actor,
            action="live_request.reject",
            before=RequestStatus.PENDING,
            status=RequestStatus.REJECTED,
            decided_by=actor,
            decided_at=timezone.now(),
            decision_reason=reason,
        )
        _publish(locked, locked.instance_id)
    return locked


@dataclass(frozen=True)
class RevokeOutcome:
    request: LiveApprovalRequest
    paused: bool  # the engine paused the running live instance
    demoted: bool  # fallback: it was not running, so active -> observe


def live_request_revoke(*, request: LiveApprovalRequest, actor: Any, reason: str) -> RevokeOutcome:
    """Revoke an approval; the live instance is paused at once.

    The revocation commits first, so from that moment the risk gate denies every order
    (NOT_APPROVED). Then the engine pauses the instance (`engine.services.instance_pause`). If the
    engine cannot pause it (not loaded, e.g. no engine running), an active instance is moved to
    observe instead, so that it cannot come back active when the engine loads it.
    """
    _require_staff(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        locked = _lock_request(request)
        _expect_status(locked, RequestStatus.APPROVED, "REQUEST_NOT_APPROVED")
        _record_decision(
            locked,
            actor=actor,
            action="live_request.revoke",
            before=RequestStatus.APPROVED,
            status=RequestStatus.REVOKED,
            revoked_by=actor,
            revoked_at=timezone.now(),
            revoke_reason=reason,
        )
        _publish(locked, locked.live_instance_id)
    paused = demoted = False
    live = (
        StrategyInstance.objects.select_related("tenant").filter(pk=locked.live_instance_id).first()
        if locked.live_instance_id
        else None
    )
    if live is not None and live.mode != Mode.OFF:
        paused, demoted = _pause_live_instance(live, actor)
    return RevokeOutcome(request=locked, paused=paused, demoted=demoted)


def _pause_live_instance(instance: StrategyInstance, actor: Any) -> tuple[bool, bool]:
    try:
        if instance_pause(instance=instance, reason=REVOKE_PAUSE_REASON, actor=actor):
            return True, False
        # False: already paused (its first reason stays) — it is not running either way.
        return True, False
    except EngineRuleError as exc:
        logger.info("revocation: engine could not pause %s (%s); demoting", instance.pk, exc.code)
    if instance.mode == Mode.ACTIVE:
        instance_set_mode(instance=instance, actor=actor, mode=Mode.OBSERVE)
        return False, True
    return False, False
