"""The reconciler: make the runtime (Redis + sandbox hosts) match the database.

Desired state is the `StrategyInstance` table: `mode != off` means loaded. Loading runs the
strategy's `init()` in a sandbox host and stores the resulting state in Redis; unloading drops it
(and cancels the instance's open orders). A version or config-revision change reloads (state
reset); a change of only `"live": true` config fields is applied to the running instance and keeps
its state. Running it twice changes nothing.

It runs on commit of every instance change (`stratbox.instances.events`), at worker start-up and
periodically from beat; it always re-reads the database, so a late or duplicate call is harmless.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from sandbox import SandboxError
from stratbox.engine import conf, events, runtime, sandboxes
from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.models import InstanceRuntime
from stratbox.engine.snapshots import snapshot_flush
from stratbox.instances.models import Mode, StrategyInstance, TickTrigger
from stratbox.trading.services.orders import orders_cancel_open

logger = logging.getLogger(__name__)

LOADED_SET = runtime.PREFIX + "loaded"


@dataclass
class ReconcileReport:
    loaded: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    updated_live: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.reloaded or self.updated_live or self.unloaded)


def fingerprint(instance: StrategyInstance) -> str:
    return runtime.fingerprint(instance.version_id, instance.config_revision)


def _carries_state(instance: StrategyInstance) -> bool:
    """Whether this reload is an upgrade that keeps the strategy's state (instance_upgrade)."""
    carry = instance.carry_state_revision
    return carry is not None and carry == instance.config_revision


def _desired_queryset() -> Any:
    return StrategyInstance.objects.select_related("version__definition", "tenant").exclude(mode=Mode.OFF)


def reconcile(instance_ids: Iterable[str | uuid.UUID] | None = None) -> ReconcileReport:
    """Reconcile the named instances, or every instance (including runtime leftovers) when None."""
    report = ReconcileReport()
    r = runtime.r()
    if instance_ids is None:
        desired, leftovers = _sweep(report)
    else:
        wanted = {str(i) for i in instance_ids}
        desired = list(_desired_queryset().filter(pk__in=wanted))
        leftovers = wanted - {str(i.pk) for i in desired}
    hints = runtime.rt_get_many([str(i.pk) for i in desired]) if desired else {}
    for instance in desired:
        rt = hints.get(str(instance.pk))
        if _in_line(instance, rt):
            _refresh(instance, rt)  # type: ignore[arg-type]
            if instance.tenant.killed_at is not None and not rt["paused"]:  # type: ignore[index]
                pause_runtime(instance, PauseReason.KILL_SWITCH)
            report.unchanged += 1
            continue
        try:
            reconcile_one(instance, report=report)
        except LockBusy:
            # A tick holds the instance right now; the tick itself notices the change, and the
            # periodic sweep retries.
            report.failed[str(instance.pk)] = "BUSY"
    for iid in leftovers:
        if r.exists(runtime.rt_key(iid)) or r.sismember(LOADED_SET, iid):
            instance_unload(iid)
            report.unloaded.append(iid)
    return report


_SWEEP_FIELDS = ("loaded", "fingerprint", "config", "mode", "freq", "paused", "trigger")


def _sweep(report: ReconcileReport) -> tuple[list[StrategyInstance], set[str]]:
    """The periodic sweep's common case, cheaply: plain rows and one pipelined Redis read.

    Instances already in line only get their mode and frequency refreshed; the rest (to load,
    reload or pause) are returned as full rows for the usual path, with the runtime leftovers of
    instances that are off or gone. Building 1,000 model graphs and reading 1,000 runtimes one by
    one held a tick worker for over a second every 30 s.
    """
    rows = list(
        StrategyInstance.objects.exclude(mode=Mode.OFF).values_list(
            "pk",
            "tenant_id",
            "mode",
            "version_id",
            "config_revision",
            "config",
            "frequency_seconds",
            "tenant__killed_at",
            "trigger",
            "market_id",
        )
    )
    r = runtime.r()
    pipe = r.pipeline(transaction=False)
    for row in rows:
        pipe.hmget(runtime.rt_key(str(row[0])), _SWEEP_FIELDS)
        pipe.zscore(runtime.DUE_KEY, str(row[0]))
    pipe.smembers(LOADED_SET)
    replies = pipe.execute()
    leftovers = set(replies[-1]) - {str(row[0]) for row in rows}
    rest = []
    for i, (
        pk,
        tenant_id,
        mode,
        version_id,
        revision,
        config,
        freq,
        killed_at,
        trigger,
        market_id,
    ) in enumerate(rows):
        loaded, fp, rt_config, rt_mode, rt_freq, paused, rt_trigger = replies[2 * i]
        rt = {"fingerprint": fp, "config": json.loads(rt_config) if rt_config else None}
        if (
            loaded != "1"
            or not runtime.desired_applied(rt, version_id, revision, config)
            or (killed_at is not None and paused != "1")
        ):
            rest.append(pk)
            continue
        _refresh_values(
            str(pk),
            tenant_id,
            mode=mode,
            freq=int(freq),
            rt_mode=rt_mode,
            rt_freq=int(rt_freq or 0),
            paused=paused == "1",
            scheduled=replies[2 * i + 1] is not None,
            trigger=trigger,
            rt_trigger=rt_trigger or TickTrigger.INTERVAL,
            market_id=market_id,
        )
        report.unchanged += 1
    desired = list(_desired_queryset().filter(pk__in=rest)) if rest else []
    return desired, leftovers


class LockBusy(Exception):
    pass


def _in_line(instance: StrategyInstance, rt: dict[str, Any] | None) -> bool:
    return bool(
        rt
        and rt["loaded"]
        and runtime.desired_applied(rt, instance.version_id, instance.config_revision, instance.config)
    )


def _lock(iid: str, wait: float | None = None) -> str:
    deadline = time.monotonic() + (conf.get("ENGINE_LOCK_TTL") if wait is None else wait)
    while True:
        token = runtime.lock_acquire(iid)
        if token:
            return token
        if time.monotonic() >= deadline:
            raise LockBusy(iid)
        time.sleep(0.02)


def reconcile_one(
    instance: StrategyInstance, *, report: ReconcileReport | None = None, locked: bool = False
) -> dict[str, Any] | None:
    """Bring one desired (mode != off) instance in line; returns its runtime state afterwards."""
    report = report if report is not None else ReconcileReport()
    iid = str(instance.pk)
    token = None if locked else _lock(iid)
    try:
        rt = runtime.rt_get(iid)
        fp = fingerprint(instance)
        config = instance.config or {}
        if rt is None or not rt["loaded"]:
            snap = InstanceRuntime.objects.filter(instance_id=instance.pk).first()
            if (
                snap is not None
                and snap.fingerprint == fp
                and snap.state is not None
                and snap.config == config
            ):
                # Redis lost the runtime (restart/failover): continue from the PostgreSQL snapshot.
                _load(instance, state=snap.state, state_rev=snap.state_rev, snap=snap)
            elif snap is not None and snap.state is not None and _carries_state(instance):
                # An upgrade with keep_state of an instance that was not loaded: carry the snapshot.
                _load(instance, state=snap.state, state_rev=snap.state_rev, snap=snap)
            else:
                _load(instance, state=None, state_rev=0)
            report.loaded.append(iid)
        elif rt["fingerprint"] != fp:
            if _carries_state(instance):
                # An upgrade with keep_state: the new code's on_load gets the saved state.
                carried = rt.get("state") or {}
                _load(instance, state=carried, state_rev=int(rt.get("state_rev") or 0), previous=rt)
            else:
                _load(instance, state=None, state_rev=0, previous=rt)
            report.reloaded.append(iid)
        elif (rt["config"] or {}) != config:
            changed = sorted(
                k
                for k in set(config) | set(rt["config"] or {})
                if config.get(k) != (rt["config"] or {}).get(k)
            )
            schema = instance.version.config_schema or {}
            if all(isinstance(schema.get(k), dict) and schema[k].get("live") for k in changed):
                _apply_live(instance, rt, changed)
                report.updated_live.append(iid)
            else:
                _load(instance, state=None, state_rev=0, previous=rt)
                report.reloaded.append(iid)
        else:
            _refresh(instance, rt)
            report.unchanged += 1
        rt = runtime.rt_get(iid)
        if rt and rt["loaded"] and instance.tenant.killed_at is not None and not rt["paused"]:
            pause_runtime(instance, PauseReason.KILL_SWITCH)
        return runtime.rt_get(iid)
    except LockBusy:
        raise
    except Exception as exc:
        if not isinstance(exc, SandboxError):
            raise
        report.failed[iid] = str(exc.code)
        _load_failed(instance, exc)
        return runtime.rt_get(iid)
    finally:
        if token:
            runtime.lock_release(iid, token)


def _load(
    instance: StrategyInstance,
    *,
    state: dict[str, Any] | None,
    state_rev: int,
    previous: dict[str, Any] | None = None,
    snap: InstanceRuntime | None = None,
) -> None:
    """Load into the local host: `state=None` runs `init()` (fresh runtime), otherwise restores `state`."""
    iid = str(instance.pk)
    tenant_id = str(instance.tenant_id)
    fp = fingerprint(instance)
    config = instance.config or {}
    # Every load gets a new id: host copies of an earlier load can never be mistaken for this one.
    load_id = uuid.uuid4().hex[:12]
    sandboxes.unload(tenant_id, iid)
    result = sandboxes.load(
        tenant_id=tenant_id,
        key=iid,
        version=instance.version,
        config=config,
        fingerprint=fp,
        load_id=load_id,
        state=state,
        state_rev=state_rev,
        seed=uuid.UUID(iid).int % (2**31),
    )
    new_state = result.get("state") if state is None else state
    now = time.time()
    paused = bool(previous and previous.get("paused")) or bool(snap and snap.paused)
    reason = (
        ((previous or {}).get("pause_reason") or (snap.pause_reason if snap else "") or "") if paused else ""
    )
    mapping = {
        "loaded": "1",
        "load_id": load_id,
        "tenant": tenant_id,
        "fingerprint": fp,
        "config": runtime.dumps(config),
        "mode": instance.mode,
        "freq": int(instance.frequency_seconds),
        "trigger": instance.trigger,
        "market": str(instance.market_id),
        "state": runtime.dumps(new_state if new_state is not None else {}),
        "state_rev": state_rev,
        "paused": "1" if paused else "",
        "pause_reason": reason,
        "consecutive_failures": snap.consecutive_failures if snap else 0,
        "last_error": "",
        "loaded_at": now,
    }
    r = runtime.r()
    pipe = r.pipeline()
    pipe.hset(runtime.rt_key(iid), mapping=mapping)
    pipe.hdel(runtime.rt_key(iid), "inflight", "queued_slot")
    pipe.sadd(LOADED_SET, iid)
    pipe.sadd(runtime.DIRTY_KEY, iid)
    if not paused:
        runtime.arm(
            pipe,
            iid,
            freq=int(instance.frequency_seconds),
            trigger=instance.trigger,
            market_id=instance.market_id,
            now=now,
        )
    else:
        pipe.zrem(runtime.DUE_KEY, iid)
    pipe.execute()
    if snap is None:
        # A fresh init() is the new baseline: snapshot it now so a Redis loss never falls back further.
        snapshot_flush([iid])
    events.publish(
        tenant_id=tenant_id,
        instance_id=iid,
        kind="status",
        data={
            "loaded": True,
            "paused": paused,
            "pause_reason": reason or None,
            "fingerprint": fp,
            "mode": instance.mode,
        },
    )


def _apply_live(instance: StrategyInstance, rt: dict[str, Any], changed: list[str]) -> None:
    """Live config fields: tell the local host (others reload from Redis with the new config), keep state."""
    iid = str(instance.pk)
    config = instance.config or {}
    try:
        sandboxes.client().update_config(str(instance.tenant_id), iid, config)
        sandboxes.advanced(iid, rt.get("load_id") or "", config, rt["state_rev"])
    except Exception:
        sandboxes.forget(iid)
    r = runtime.r()
    pipe = r.pipeline()
    pipe.hset(runtime.rt_key(iid), mapping={"config": runtime.dumps(config), "mode": instance.mode})
    pipe.sadd(runtime.DIRTY_KEY, iid)
    pipe.execute()
    _refresh(instance, runtime.rt_get(iid) or rt)
    events.publish(
        tenant_id=instance.tenant_id, instance_id=iid, kind="status", data={"config_updated_live": changed}
    )


def _refresh(instance: StrategyInstance, rt: dict[str, Any]) -> None:
    """Cheap fields that never need a reload: mode, frequency and trigger."""
    _refresh_values(
        str(instance.pk),
        instance.tenant_id,
        mode=instance.mode,
        freq=int(instance.frequency_seconds),
        rt_mode=rt.get("mode"),
        rt_freq=rt.get("freq"),
        paused=bool(rt["paused"]),
        trigger=instance.trigger,
        rt_trigger=rt.get("trigger") or TickTrigger.INTERVAL,
        market_id=instance.market_id,
    )


def _refresh_values(
    iid: str,
    tenant_id: Any,
    *,
    mode: str,
    freq: int,
    rt_mode: Any,
    rt_freq: Any,
    paused: bool,
    trigger: str,
    rt_trigger: str,
    market_id: Any,
    scheduled: bool | None = None,
) -> None:
    updates: dict[str, Any] = {}
    if rt_mode != mode:
        updates["mode"] = mode
    if rt_freq != freq:
        updates["freq"] = freq
    if rt_trigger != trigger:
        updates["trigger"] = trigger
    if not updates:
        if scheduled is None:
            scheduled = runtime.r().zscore(runtime.DUE_KEY, iid) is not None
        if not paused and not scheduled:
            runtime.arm_now(iid, freq=freq, trigger=trigger, market_id=market_id)
        return
    pipe = runtime.r().pipeline()
    pipe.hset(runtime.rt_key(iid), mapping={**updates, "market": str(market_id)})
    if ("freq" in updates or "trigger" in updates) and not paused:
        runtime.arm(pipe, iid, freq=freq, trigger=trigger, market_id=market_id, now=time.time())
    pipe.execute()
    events.publish(tenant_id=tenant_id, instance_id=iid, kind="status", data=updates)


def _load_failed(instance: StrategyInstance, exc: Any) -> None:
    iid = str(instance.pk)
    error = {"code": str(exc.code), "message": exc.message, "line": exc.line, "at": time.time()}
    r = runtime.r()
    pipe = r.pipeline()
    pipe.hset(
        runtime.rt_key(iid),
        mapping={
            "loaded": "",
            "tenant": str(instance.tenant_id),
            "mode": instance.mode,
            "last_error": runtime.dumps(error),
        },
    )
    pipe.zrem(runtime.DUE_KEY, iid)
    pipe.execute()
    logger.warning("instance %s failed to load: %s", iid, exc)
    events.publish(
        tenant_id=instance.tenant_id, instance_id=iid, kind="status", data={"loaded": False, "error": error}
    )


def instance_unload(iid: str, *, locked: bool = False) -> None:
    """Drop the runtime of an instance that is off (or gone) and cancel its open orders."""
    token: str | None = None
    if not locked:
        try:
            token = _lock(iid)
        except LockBusy:
            token = None  # the holder's tick notices the instance is off and does nothing
    try:
        rt = runtime.rt_get(iid)
        r = runtime.r()
        pipe = r.pipeline()
        pipe.delete(runtime.rt_key(iid))
        pipe.zrem(runtime.DUE_KEY, iid)
        pipe.srem(LOADED_SET, iid)
        pipe.srem(runtime.DIRTY_KEY, iid)
        pipe.execute()
        if rt and rt.get("tenant"):
            sandboxes.unload(rt["tenant"], iid)
        InstanceRuntime.objects.filter(instance_id=iid).delete()
        instance = StrategyInstance.objects.filter(pk=iid).first()
        if instance is not None:
            orders_cancel_open(instance=instance)
            events.publish(
                tenant_id=instance.tenant_id,
                instance_id=iid,
                kind="status",
                data={"loaded": False, "paused": False, "at": timezone.now().isoformat()},
            )
    finally:
        if token:
            runtime.lock_release(iid, token)
