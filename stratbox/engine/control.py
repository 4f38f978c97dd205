"""Pause, resume and the tenant kill switch.

Paused is runtime only (never a persisted mode): a paused instance stays loaded — its state is
kept — but leaves the due set, so it receives no ticks, trades nothing and renders nothing. The
pause is written to Redis and at once to the PostgreSQL snapshot, so a safety pause (daily loss,
circuit breaker, kill switch) survives a Redis loss.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from django.db import transaction
from django.utils import timezone

from stratbox.engine import events, runtime
from stratbox.engine.models import InstanceRuntime
from stratbox.instances.models import Mode, StrategyInstance
from tenants.errors import Conflict
from tenants.models import Tenant
from tenants.services import audit_record


class PauseReason(StrEnum):
    """Why an instance is paused: the code is stored and shown verbatim, next to its `label`."""

    USER = "USER"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    CIRCUIT_BREAKER = "CIRCUIT_BREAKER"
    KILL_SWITCH = "KILL_SWITCH"
    APPROVAL_REVOKED = "APPROVAL_REVOKED"  # staff revoked a live instance's approval (governance)
    BAD_STATE = "BAD_STATE"  # its runtime state could not be stored, flush after flush (snapshots)
    VENUE_DISCREPANCY = "VENUE_DISCREPANCY"  # the venue holds other positions or cash than our ledger

    @property
    def label(self) -> str:
        return PAUSE_LABELS[self]


# How a pause reason reads to a person (the status pill; live.js holds the same labels).
PAUSE_LABELS = {
    PauseReason.USER: "paused by a user",
    PauseReason.DAILY_LOSS_LIMIT: "daily loss limit reached",
    PauseReason.CIRCUIT_BREAKER: "too many consecutive failed runs",
    PauseReason.KILL_SWITCH: "the tenant's kill switch is on",
    PauseReason.APPROVAL_REVOKED: "staff revoked the live-trading approval",
    PauseReason.BAD_STATE: "its state could not be stored",
    PauseReason.VENUE_DISCREPANCY: "the venue disagrees with our ledger (see the account's discrepancies)",
}


class EngineRuleError(Conflict):
    """A refused engine action; `code` (UPPER_SNAKE) is shown verbatim by the API as a 409."""


def pause_runtime(instance: StrategyInstance, reason: str) -> bool:
    """Mark a loaded instance paused; False when it was not loaded or already paused."""
    iid = str(instance.pk)
    r = runtime.r()
    key = runtime.rt_key(iid)
    if r.hget(key, "loaded") != "1":
        return False
    if r.hget(key, "paused") == "1":
        # The first reason stays: lifting the kill switch must not resume a user's or a safety pause.
        return False
    pipe = r.pipeline()
    pipe.hset(key, mapping={"paused": "1", "pause_reason": reason, "paused_at": time.time()})
    pipe.zrem(runtime.DUE_KEY, iid)
    pipe.hdel(key, "next_due_at", "queued_slot")
    pipe.execute()
    InstanceRuntime.objects.filter(instance_id=instance.pk).update(paused=True, pause_reason=reason)
    events.publish(
        tenant_id=instance.tenant_id,
        instance_id=iid,
        kind="status",
        data={"paused": True, "pause_reason": reason},
    )
    return True


def resume_runtime(instance: StrategyInstance) -> bool:
    iid = str(instance.pk)
    r = runtime.r()
    key = runtime.rt_key(iid)
    if r.hget(key, "loaded") != "1" or r.hget(key, "paused") != "1":
        return False
    pipe = r.pipeline()
    pipe.hset(key, mapping={"paused": "", "pause_reason": "", "consecutive_failures": 0})
    pipe.hdel(key, "paused_at")
    pipe.execute()
    runtime.arm_now(
        iid, freq=int(instance.frequency_seconds), trigger=instance.trigger, market_id=instance.market_id
    )
    InstanceRuntime.objects.filter(instance_id=instance.pk).update(
        paused=False, pause_reason="", consecutive_failures=0
    )
    events.publish(
        tenant_id=instance.tenant_id,
        instance_id=iid,
        kind="status",
        data={"paused": False, "pause_reason": None},
    )
    return True


def instance_pause(*, instance: StrategyInstance, reason: str = PauseReason.USER, actor: Any = None) -> bool:
    """Pause a loaded instance (user button or an automatic safety rule) and audit it."""
    if instance.mode == Mode.OFF:
        raise EngineRuleError("INSTANCE_OFF", "The instance is off; power it on before pausing it.")
    with transaction.atomic():
        changed = pause_runtime(instance, reason)
        if not changed and runtime.r().hget(runtime.rt_key(str(instance.pk)), "loaded") != "1":
            raise EngineRuleError("NOT_LOADED", "The instance is not loaded yet; try again in a moment.")
        if changed:
            audit_record(
                tenant=instance.tenant,
                actor=actor,
                actor_label="" if actor is not None else "engine",
                action="instance.pause",
                target=instance,
                after={"paused": True, "reason": reason},
            )
    return changed


def instance_resume(*, instance: StrategyInstance, actor: Any = None) -> bool:
    if instance.mode == Mode.OFF:
        raise EngineRuleError("INSTANCE_OFF", "The instance is off; power it on instead.")
    tenant = Tenant.objects.get(pk=instance.tenant_id)
    if tenant.killed_at is not None:
        raise EngineRuleError(
            "KILL_SWITCH", "The tenant's kill switch is on; turn it off before resuming instances."
        )
    with transaction.atomic():
        rt = runtime.rt_get(str(instance.pk))
        before = {"paused": bool(rt and rt["paused"]), "reason": rt["pause_reason"] if rt else None}
        changed = resume_runtime(instance)
        if changed:
            audit_record(
                tenant=instance.tenant,
                actor=actor,
                action="instance.resume",
                target=instance,
                before=before,
                after={"paused": False},
            )
    return changed


def tenant_kill_switch(*, tenant: Tenant, on: bool, actor: Any = None) -> Tenant:
    """Pause (on) every instance of the tenant at once, or lift the switch (off).

    Lifting it resumes only the instances the kill switch paused; a user's own pause or a safety
    pause (daily loss, circuit breaker) stays until resumed explicitly.
    """
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        before = {"killed_at": locked.killed_at.isoformat() if locked.killed_at else None}
        locked.killed_at = (locked.killed_at or timezone.now()) if on else None
        locked.save(update_fields=["killed_at"])
        audit_record(
            tenant=locked,
            actor=actor,
            action="tenant.kill_switch." + ("on" if on else "off"),
            target=locked,
            before=before,
            after={"killed_at": locked.killed_at.isoformat() if locked.killed_at else None},
        )
    # After the commit: the tick path also checks `killed_at` on every tick, so no instance can
    # act between the commit and these pauses.
    instances = list(StrategyInstance.objects.filter(tenant=locked).exclude(mode=Mode.OFF))
    for instance in instances:
        instance.tenant = locked
        if on:
            pause_runtime(instance, PauseReason.KILL_SWITCH)
        elif runtime.r().hget(runtime.rt_key(str(instance.pk)), "pause_reason") == PauseReason.KILL_SWITCH:
            resume_runtime(instance)
    tenant.killed_at = locked.killed_at
    return locked
