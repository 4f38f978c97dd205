"""One tick: one scheduled slot of one instance, run exactly once, in any worker.

    claim (instance, slot) ─ a replayed task is a no-op
    lock  (instance)       ─ ticks never overlap; a busy instance's tick is coalesced and counted
    recover in-flight      ─ a tick whose worker died is replayed first, with the same tick input
                             and tick_seq, from the last persisted state (orders are idempotent
                             on client_order_id, so nothing is lost or placed twice)
    read instance + quote → trusted snapshot → strategy in the tenant's sandbox host
    → each intent through `trading.services.order_place` (observe: shadow; active: risk gate + broker)
    → persist state (Redis) → record the run → publish events after commit

No database row lock is held while user code runs: `order_place` owns its short transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from stratbox.engine import conf, events, runtime, sandboxes
from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.models import RunStatus, RunTrigger
from stratbox.engine.reconciler import instance_unload, reconcile_one
from stratbox.engine.runs import keep_run, record_run
from stratbox.engine.selectors import tick_instance
from stratbox.engine.ticks.door import call_strategy, is_signal, strategy_outcome
from stratbox.engine.ticks.failures import auto_pause, daily_loss_check, fail
from stratbox.engine.ticks.inputs import quote_now, tick_from_quote, tick_snapshot
from stratbox.engine.ticks.prefetch import Prefetched
from stratbox.engine.ticks.shaping import TickOutcome, action_of, tick_events
from stratbox.instances.models import Mode
from stratbox.notifications.events import tick_notify
from stratbox.trading.services import order_place

logger = logging.getLogger(__name__)

__all__ = ["MAX_REPLAYS", "TickOutcome", "count_coalesced", "tick_run"]


MAX_REPLAYS = 3


def count_coalesced(iid: str) -> None:
    pipe = runtime.r().pipeline()
    pipe.hincrby(runtime.rt_key(iid), "coalesced_ticks", 1)
    runtime.stats_incr(pipe, iid, coalesced=1)
    pipe.execute()


@dataclass
class _Lock:
    """The tick lock held by `tick_run`; a successful tick releases it in its final round trip."""

    token: str
    released: bool = False


def tick_run(
    instance_id: Any,
    due_at: float,
    trigger: str = RunTrigger.SCHEDULED,
    prefetched: Prefetched | None = None,
    begun: tuple[str, str | None, dict[str, Any] | None] | None = None,
) -> TickOutcome:
    """Run one scheduled slot of one instance (idempotent; safe to call from any worker, any number of times).

    `begun` is this slot's `runtime.tick_begin` result when the batch already began it."""
    iid = str(instance_id)
    slot = int(due_at)
    r = runtime.r()
    status, token, rt = begun if begun is not None else runtime.tick_begin(iid, slot)
    if status == "duplicate":
        return TickOutcome(status="duplicate")
    if token is None:
        count_coalesced(iid)
        return TickOutcome(status="coalesced")
    lock = _Lock(token)
    try:
        if rt is None or not rt["loaded"]:
            return TickOutcome(status="not_loaded")
        max_late = max(conf.get("ENGINE_MAX_LATENESS"), 2.0 * (rt.get("freq") or 1))
        if trigger == RunTrigger.SCHEDULED and time.time() - slot > max_late and not rt.get("inflight"):
            # Behind schedule (overload) or a message redelivered long after its slot: the schedule has
            # moved on, so shed this tick (counted) instead of acting on an old price.
            count_coalesced(iid)
            return TickOutcome(status="late")
        recovered = False
        inflight = rt.get("inflight")
        if inflight and int(inflight.get("attempts") or 0) >= MAX_REPLAYS:
            # A tick that keeps failing in trusted code must not block the instance forever.
            logger.error(
                "abandoning in-flight tick %s of %s after %s replays", inflight.get("seq"), iid, MAX_REPLAYS
            )
            r.hdel(runtime.rt_key(iid), "inflight")
            rt["inflight"] = None
        elif inflight:
            inflight["attempts"] = int(inflight.get("attempts") or 0) + 1
            r.hset(runtime.rt_key(iid), "inflight", runtime.dumps(inflight))
        if rt.get("inflight"):
            _execute(
                iid,
                rt,
                slot=int(rt["inflight"]["slot"]),
                trigger=rt["inflight"].get("trigger") or trigger,
                inflight=rt["inflight"],
            )
            recovered = True
            rt = runtime.rt_get(iid)
            if rt is None or not rt["loaded"]:
                return TickOutcome(status="not_loaded", recovered=True)
        if rt["paused"]:
            runtime.stats_incr(r, iid, skipped=1)
            return TickOutcome(status="paused", recovered=recovered)
        if trigger == RunTrigger.SCHEDULED and slot <= rt["tick_seq"]:
            return TickOutcome(status="late", recovered=recovered)  # never run a slot older than the last one
        outcome = _execute(
            iid, rt, slot=slot, trigger=trigger, prefetched=prefetched, lock=lock, due=float(due_at)
        )
        outcome.recovered = recovered
        return outcome
    finally:
        if not lock.released:
            runtime.lock_release(iid, token)


def _execute(
    iid: str,
    rt: dict[str, Any],
    *,
    slot: int,
    trigger: str,
    inflight: dict[str, Any] | None = None,
    prefetched: Prefetched | None = None,
    lock: _Lock | None = None,
    due: float | None = None,
) -> TickOutcome:
    """Run one tick under the caller's lock; with `lock`, a successful tick also releases it."""
    r = runtime.r()
    # Prefetched rows were read for this batch a moment ago; a recovery always re-reads.
    instance = prefetched.instances.get(iid) if prefetched and inflight is None else tick_instance(iid)
    if instance is None or instance.mode == Mode.OFF:
        instance_unload(iid, locked=True)
        return TickOutcome(status="off")
    if instance.tenant.killed_at is not None:
        r.hdel(runtime.rt_key(iid), "inflight")
        pause_runtime(instance, PauseReason.KILL_SWITCH)
        return TickOutcome(status="paused")
    if inflight is None and not runtime.desired_applied(
        rt, instance.version_id, instance.config_revision, instance.config
    ):
        # The desired state changed and its on-commit reconcile has not reached us yet: apply it now.
        rt = reconcile_one(instance, locked=True) or rt
        if not rt.get("loaded") or rt.get("paused"):
            return TickOutcome(status="not_loaded")
    mode = instance.mode
    if inflight is not None:
        seq = int(inflight["seq"])
        tick = inflight["tick"]
        quote = inflight["quote"]
        due_at = float(inflight.get("due_at") or slot)
    else:
        seq = slot
        due_at = float(due) if due is not None and int(due) == slot else float(slot)
        quote = prefetched.quotes.get(instance.market_id) if prefetched else quote_now(instance)
        if not quote:
            now = time.time()
            pipe = r.pipeline()
            runtime.stats_incr(pipe, iid, runs=1, skipped=1)
            pipe.hset(runtime.rt_key(iid), mapping={"last_tick_at": now, "worker": runtime.worker_id()})
            pipe.execute()
            return TickOutcome(
                status="skipped", error={"code": "NO_QUOTE", "message": "no quote for the market"}
            )
        tick = tick_from_quote(quote, instance.market.code)
    prefix = f"{iid}-{seq}"
    started = time.time()
    # The in-flight record (what a replay needs: the tick input, quote and tick_seq) is written
    # before the first order is placed — and only then: a tick that dies before ordering anything
    # has no effect outside its own state, so it is simply lost (the state stays at the last
    # persisted revision). Quiet ticks, the vast majority, save the round trip.
    inflight_record = runtime.dumps(
        {
            "attempts": int((inflight or {}).get("attempts") or 0),
            "slot": slot,
            "seq": seq,
            "tick": tick,
            "quote": quote,
            "trigger": trigger,
            "due_at": due_at,
            "started": started,
            "worker": runtime.worker_id(),
        }
    )
    if inflight is not None:
        r.hset(runtime.rt_key(iid), "inflight", inflight_record)
    config = rt.get("config") or {}
    actions: list[dict[str, Any]] = []
    try:
        t_snap = time.perf_counter()
        # The batch's snapshot was taken at the batch's quote, which is the quote this tick uses.
        built = prefetched.built.pop(iid, None) if prefetched and inflight is None else None
        if built is not None and built.get("order_id_prefix") == prefix:
            snapshot = built
        else:
            trusted = prefetched.trusted(instance) if prefetched and inflight is None else None
            snapshot = tick_snapshot(instance, quote, mode, prefix, trusted)
        t_user = time.perf_counter()
        ran = prefetched.host_results.pop(iid, None) if built is snapshot and prefetched else None
        if isinstance(ran, Exception):
            raise ran
        if ran is not None:
            result, intents, skipped = strategy_outcome(instance, ran, snapshot, is_signal(instance))
        else:
            result, intents, skipped = call_strategy(instance, rt, tick, snapshot, iid)
        phases = (t_user - t_snap, time.perf_counter() - t_user)
    except Exception as exc:
        return fail(
            instance,
            rt,
            exc,
            slot=slot,
            seq=seq,
            due_at=due_at,
            started=started,
            trigger=trigger,
            mode=mode,
            config=config,
        )
    now_dt = timezone.now()
    order_ms: list[float] = []
    filled: list[Any] = []  # this tick's real orders that filled (for the day's P&L after them)
    if intents and prefetched is not None:
        prefetched.flush()  # a death while ordering loses this tick only, never a quiet one before it
    if intents and inflight is None:
        r.hset(runtime.rt_key(iid), "inflight", inflight_record)
    for intent in intents:
        cid = intent.get("client_order_id")
        if not isinstance(cid, str) or not cid.startswith(prefix + "-"):
            actions.append(
                action_of(intent, None)
                | {
                    "kind": "denied",
                    "deny_code": "INVALID_ORDER",
                    "message": "client_order_id does not match this tick",
                }
            )
            continue
        try:
            t_order = time.perf_counter()
            placed = order_place(instance=instance, intent=intent, quote=quote, mode=mode, now=now_dt)
            order_ms.append((time.perf_counter() - t_order) * 1000)
        except Exception as exc:
            logger.exception("order_place failed for %s", cid)
            actions.append(
                action_of(intent, None)
                | {"kind": "denied", "deny_code": "ENGINE_ERROR", "message": str(exc)[:200]}
            )
            continue
        actions.append(action_of(intent, placed))
        order = placed.order
        if order is not None and order.filled_at is not None and not order.is_shadow and not placed.duplicate:
            filled.append(order)
        if prefetched is not None and placed.status != "shadow":
            prefetched.balance_changed(instance)
    actions.extend(skipped)
    failpoint = conf.get("ENGINE_FAILPOINT_SLEEP_AFTER_ORDERS")
    if failpoint and intents:
        time.sleep(failpoint)
    paused_reason = daily_loss_check(instance, mode, actions, snapshot, quote, filled)
    finished = time.time()
    new_state = result["state"]  # checked: an object of plain data (`replies.state_json`)
    logs = list(result.get("logs") or [])
    placed_orders = sum(1 for a in actions if a["kind"] in ("order", "shadow"))
    keep = keep_run(iid, trigger, actions, None, slot, int(rt.get("freq") or 1), rt["state_rev"] == 0)
    run = None
    if keep:
        run = record_run(
            instance=instance,
            trigger=trigger,
            status=RunStatus.OK,
            seq=seq,
            due_at=due_at,
            started=started,
            finished=finished,
            config=config,
            mode=mode,
            logs=logs,
            actions=actions,
            error=None,
            replay=inflight is not None,
        )
    new_rev = rt["state_rev"] + 1
    # One atomic round trip ends the tick (or, for a quiet tick of a batch, the batch's quiet ticks
    # together): state, counters, the events' seqs and the lock.
    shown = tick_events(seq, finished, logs, actions, run, "ok", started)
    end = runtime.TickEnd(
        iid=iid,
        token=lock.token if lock is not None else None,
        finished=finished,
        fields={
            "state": result["state_json"],
            "state_rev": new_rev,
            "last_tick_at": finished,
            "last_due_at": due_at,
            "last_duration_ms": round((finished - started) * 1000, 3),
            "consecutive_failures": 0,
            "last_error": "",
            "worker": runtime.worker_id(),
            "tick_seq": seq,
        },
        events=len(shown),
        orders=placed_orders,
        seq_key=events.SEQ_KEY.format(iid),
    )
    if conf.get("ENGINE_METRICS"):
        end.metric = (due_at, started, phases[0], phases[1], sum(order_ms) / 1000)
        end.order_metrics = [f"{ms:.3f}" for ms in order_ms]

    def after(last_seq: int) -> None:
        sandboxes.advanced(iid, rt.get("load_id") or "", config, new_rev)
        if prefetched is None or prefetched.audience is None or iid in prefetched.audience:
            events.publish_reserved(
                tenant_id=instance.tenant_id, instance_id=iid, events=shown, last_seq=last_seq
            )
        if paused_reason:
            auto_pause(instance, paused_reason, {"tick_seq": seq})
        tick_notify(instance=instance, actions=actions, logs=logs, slot=seq)  # fills, denials, context.notify

    if prefetched is not None and inflight is None and not intents and not paused_reason:
        prefetched.defer(end, after)
    else:
        last_seq = runtime.tick_end_many([end])[0]
        after(last_seq)
    if lock is not None:
        lock.released = True  # by the tick's end (`Prefetched.flush` also if that fails)
    return TickOutcome(
        status="ok",
        run_id=run.pk if run else None,
        actions=actions,
        logs=logs,
        state=new_state,
        recovered=inflight is not None,
    )
