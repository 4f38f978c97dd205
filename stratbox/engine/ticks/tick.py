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
from stratbox.engine.ticks.prefetch import Batch
from stratbox.engine.ticks.shaping import TickOutcome, action_of, tick_events
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.notifications.events import tick_notify
from stratbox.trading.services import order_place
from stratbox.trading.services.lifecycle import order_cancel

logger = logging.getLogger(__name__)

__all__ = ["MAX_REPLAYS", "TickInput", "TickOutcome", "count_coalesced", "tick_run"]


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


@dataclass(slots=True)
class TickInput:
    """What one tick runs with, built by its caller: `batch.tick_run_batch` (from what the batch
    read and ran), `tick_run` alone (`_single_input`) or a crash recovery (`_replay_input`)."""

    instance: StrategyInstance | None
    slot: int
    seq: int  # the tick's sequence number (a replay keeps its first attempt's)
    trigger: str
    due_at: float
    quote: dict[str, Any] | None
    # A replay's recorded tick input; otherwise built from the quote.
    tick: dict[str, Any] | None = None
    # The in-flight record of a tick being replayed after its worker died.
    replay: dict[str, Any] | None = None
    # The batch this tick belongs to (trusted snapshots, quiet ticks persisted together), and what
    # its host round trip already did for this tick: the snapshot sent and the host's answer (a
    # result or the call's SandboxError).
    batch: Batch | None = None
    snapshot: dict[str, Any] | None = None
    ran: Any = None


def _single_input(iid: str, slot: int, trigger: str, due_at: float) -> TickInput:
    """A tick run alone reads its row and quote now."""
    instance = tick_instance(iid)
    quote = quote_now(instance) if instance is not None else None
    return TickInput(instance, slot, slot, trigger, due_at, quote)


def _replay_input(iid: str, inflight: dict[str, Any], trigger: str) -> TickInput:
    """A tick left in flight by a dead worker runs again with its recorded input; its row is re-read."""
    slot = int(inflight["slot"])
    return TickInput(
        tick_instance(iid),
        slot,
        int(inflight["seq"]),
        inflight.get("trigger") or trigger,
        float(inflight.get("due_at") or slot),
        inflight["quote"],
        tick=inflight["tick"],
        replay=inflight,
    )


def tick_run(
    instance_id: Any,
    due_at: float,
    trigger: str = RunTrigger.SCHEDULED,
    batched: TickInput | None = None,
    begun: tuple[str, str | None, dict[str, Any] | None] | None = None,
    seq: int | None = None,
) -> TickOutcome:
    """Run one scheduled slot of one instance (idempotent; safe to call from any worker, any number of times).

    `batched` is this slot's input when a batch built it; `begun` this slot's `runtime.tick_begin`
    result when the batch already began it. A quote-triggered tick (trigger `quote`) is identified
    by its `seq` (epoch milliseconds), due at `due_at`; a periodic one by its slot, `int(due_at)`."""
    iid = str(instance_id)
    slot = int(due_at) if seq is None else seq
    timed = trigger in (RunTrigger.SCHEDULED, RunTrigger.QUOTE)
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
        late_from = float(slot) if trigger == RunTrigger.SCHEDULED else float(due_at)
        if timed and time.time() - late_from > max_late and not rt.get("inflight"):
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
            _execute(iid, rt, _replay_input(iid, rt["inflight"], trigger))
            recovered = True
            rt = runtime.rt_get(iid)
            if rt is None or not rt["loaded"]:
                return TickOutcome(status="not_loaded", recovered=True)
        if rt["paused"]:
            runtime.stats_incr(r, iid, skipped=1)
            return TickOutcome(status="paused", recovered=recovered)
        if timed and slot <= (rt["tick_seq"] if runtime.is_quote_seq(slot) else runtime.last_slot(rt)):
            return TickOutcome(status="late", recovered=recovered)  # never run a slot older than the last one
        inp = batched if batched is not None else _single_input(iid, slot, trigger, float(due_at))
        outcome = _execute(iid, rt, inp, lock)
        outcome.recovered = recovered
        return outcome
    finally:
        if not lock.released:
            runtime.lock_release(iid, token)


def _execute(iid: str, rt: dict[str, Any], inp: TickInput, lock: _Lock | None = None) -> TickOutcome:
    """Run one tick under the caller's lock; with `lock`, a successful tick also releases it."""
    r = runtime.r()
    instance, slot, seq, trigger, due_at, quote = (
        inp.instance,
        inp.slot,
        inp.seq,
        inp.trigger,
        inp.due_at,
        inp.quote,
    )
    inflight, batch = inp.replay, inp.batch
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
    if not quote:  # a replay always has its recorded quote
        now = time.time()
        pipe = r.pipeline()
        runtime.stats_incr(pipe, iid, runs=1, skipped=1)
        pipe.hset(runtime.rt_key(iid), mapping={"last_tick_at": now, "worker": runtime.worker_id()})
        pipe.execute()
        return TickOutcome(status="skipped", error={"code": "NO_QUOTE", "message": "no quote for the market"})
    tick = inp.tick if inp.tick is not None else tick_from_quote(quote, instance.market.code)
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
        built = inp.snapshot
        if built is not None and built.get("order_id_prefix") == prefix:
            snapshot = built
        else:
            trusted = batch.trusted(instance) if batch is not None else None
            histories = batch.histories if batch is not None else None
            snapshot = tick_snapshot(instance, quote, mode, prefix, trusted, histories)
        t_user = time.perf_counter()
        ran = inp.ran if built is snapshot else None
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
    if intents and batch is not None:
        batch.flush()  # a death while ordering loses this tick only, never a quiet one before it
    if intents and inflight is None:
        r.hset(runtime.rt_key(iid), "inflight", inflight_record)
    for intent in intents:
        if intent.get("kind") == "cancel":  # checked by `replies`: only the instance's own orders
            cancelled = order_cancel(instance=instance, client_order_id=intent.get("target"), now=now_dt)
            actions.append(
                action_of(intent, None)
                | {
                    "kind": "cancel",
                    "client_order_id": intent.get("target"),
                    "status": "cancelled" if cancelled else "not_open",
                }
            )
            continue
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
        if batch is not None and placed.status != "shadow":
            batch.balance_changed(instance)
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
        if batch is None or batch.audience is None or iid in batch.audience:
            events.publish_reserved(
                tenant_id=instance.tenant_id, instance_id=iid, events=shown, last_seq=last_seq
            )
        if paused_reason:
            auto_pause(instance, paused_reason, {"tick_seq": seq})
        tick_notify(instance=instance, actions=actions, logs=logs, slot=seq)  # fills, denials, context.notify

    if batch is not None and not intents and not paused_reason:
        batch.defer(end, after)
    else:
        last_seq = runtime.tick_end_many([end])[0]
        after(last_seq)
    if lock is not None:
        lock.released = True  # by the tick's end (`Batch.flush` also if that fails)
    return TickOutcome(
        status="ok",
        run_id=run.pk if run else None,
        actions=actions,
        logs=logs,
        state=new_state,
        recovered=inflight is not None,
    )
