"""A batch of scheduled ticks (the `engine.run_ticks` task): prefetched once, begun in one round
trip, due ticks' user code run together (one host round trip per tenant), then each tick run alone
(`tick.tick_run`) with what was prepared for it; afterwards the watched instances are rendered.

An item is `(instance_id, due)` for a periodic slot (`int(due)` is the slot), or
`(instance_id, due, seq)` for a quote-triggered tick (the seq, epoch milliseconds, identifies it;
see `runtime.quote_mark`). A batch's quote ticks end with one more Redis call (`runtime.quote_done`),
so a quote that came meanwhile gets exactly one more tick; periodic batches never make it."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from stratbox.engine import conf, runtime, sandboxes
from stratbox.engine.models import RunTrigger
from stratbox.engine.rendering import render_watched_after_ticks
from stratbox.engine.ticks.door import host_command
from stratbox.engine.ticks.inputs import tick_snapshot
from stratbox.engine.ticks.prefetch import Batch, prefetch
from stratbox.engine.ticks.tick import TickInput, TickOutcome, count_coalesced, tick_run
from stratbox.instances.models import Mode

logger = logging.getLogger(__name__)

Item = tuple[str, float] | tuple[str, float, int]


def batch_item(raw: list[Any] | tuple[Any, ...]) -> Item:
    """A task argument's item, typed."""
    if len(raw) > 2:
        return (str(raw[0]), float(raw[1]), int(raw[2]))
    return (str(raw[0]), float(raw[1]))


def item_seq(item: Item) -> tuple[int, str]:
    """The tick's slot (its claim and `tick_seq`) and trigger."""
    if len(item) > 2:
        return int(item[2]), RunTrigger.QUOTE
    return int(item[1]), RunTrigger.SCHEDULED


def tick_run_batch(items: list[Item]) -> list[TickOutcome]:
    """Run several scheduled ticks; instance rows and quotes are read once for the batch.

    Afterwards the watched ones among those that ticked OK are rendered (on demand: one Redis round
    trip finds them; nobody watching costs nothing more).
    """
    quoted = [item[0] for item in items if len(item) > 2]
    if not quoted:
        return _run_batch(items)
    try:
        return _run_batch(items)
    finally:
        try:
            runtime.quote_done(quoted)
        except Exception:  # the dispatcher marks a tick never ended due again after a while
            logger.exception("ending the quote ticks of a batch failed")


def _run_batch(items: list[Item]) -> list[TickOutcome]:
    t0 = time.perf_counter()
    started_at = time.time()
    batch = prefetch([str(item[0]) for item in items])
    t_pre = time.perf_counter()
    # Claims, locks and runtimes of the whole batch in one round trip. Locks are taken for the
    # batch up front; a tick that starts late in a slow batch refreshes its lock first.
    begun_at = time.monotonic()
    try:
        begun: list[Any] = runtime.tick_begin_many([(str(item[0]), item_seq(item)[0]) for item in items])
    except Exception:
        logger.exception("batched tick begin failed; beginning one by one")
        begun = [None] * len(items)
    t_begun = time.perf_counter()
    results: dict[int, TickOutcome] = {}
    # What the hosts' round trips did for the batch's due ticks (`run_due_in_hosts`): which ticks
    # were tried, the snapshot each was sent, each host's answer (a result or the call's SandboxError).
    tried: set[str] = set()
    built: dict[str, dict[str, Any]] = {}
    ran: dict[str, Any] = {}
    todo = list(range(len(items)))  # what is left to run, by index into `items`
    while todo:
        iid, slot = items[todo[0]][:2]
        # A batch is queued when due (or with an ETA at its last due time), so its members are all
        # due; one started early (ahead of that ETA) waits for each member's own due time, never
        # longer than its offset from the first.
        early = min(slot - time.time(), slot - items[0][1])
        if early > 0:
            batch.flush()
            time.sleep(min(early, 1.0))
        if str(iid) not in tried:
            batch.flush()
            now = time.time()
            due = [
                (str(items[k][0]), items[k][1], item_seq(items[k])[0], begun[k])
                for k in todo
                if items[k][1] <= now and str(items[k][0]) not in tried
            ]
            if len(due) > 1:
                try:
                    run_due_in_hosts(batch, due, tried, built, ran)
                except Exception:  # the ticks run one by one instead
                    logger.exception("running due ticks together failed")
                # The quiet ticks first: they are persisted together at the next flush, before the
                # first tick that places an order (whose round trips would otherwise hold them up).
                todo.sort(key=lambda k: _run_order(ran.get(str(items[k][0]))))
        k = todo.pop(0)
        iid, slot = items[k][:2]
        seq, trigger = item_seq(items[k])
        began = begun[k]
        taken = None  # the host's answer this tick was given
        try:
            if began is not None and began[1] is not None:
                if time.monotonic() - begun_at > conf.get("ENGINE_LOCK_TTL") / 3 and not runtime.lock_refresh(
                    str(iid), began[1]
                ):
                    count_coalesced(str(iid))
                    results[k] = TickOutcome(status="coalesced")  # our lock lapsed: never overlap
                    continue
            sid = str(iid)
            instance = batch.instances.get(sid)
            inp = TickInput(
                instance,
                seq,
                seq,
                trigger,
                float(slot),
                batch.quotes.get(instance.market_id) if instance is not None else None,
                batch=batch,
                snapshot=built.pop(sid, None),
                ran=ran.pop(sid, None),
            )
            taken = inp.ran
            results[k] = tick_run(iid, slot, trigger, batched=inp, begun=began, seq=seq)
        except Exception:  # one instance's engine failure must not cost the rest of the batch its tick
            logger.exception("tick of %s at %s failed", iid, slot)
            results[k] = TickOutcome(status="engine_error")
        if taken is not None and results[k].status != "ok":
            # Ran in a host but the tick did not go on: the host's state is not the persisted one.
            sandboxes.forget(str(iid))
    outcomes = [results[k] for k in range(len(items))]
    batch.flush()
    if batch.lost:
        outcomes = [
            TickOutcome(status="engine_error") if str(iid) in batch.lost else out
            for (iid, *_), out in zip(items, outcomes, strict=True)
        ]
    for iid in ran:  # ran in a host but never reached its tick: that state is not persisted
        sandboxes.forget(iid)
    ticked = [str(item[0]) for item, out in zip(items, outcomes, strict=True) if out.status == "ok"]
    try:
        render_watched_after_ticks(batch.instances, ticked)
    except Exception:  # rendering is for the dashboard: never let it fail the ticks
        logger.exception("rendering watched instances failed")
    if conf.get("ENGINE_METRICS"):
        statuses = "/".join(sorted({o.status for o in outcomes}))
        runtime.r().rpush(
            runtime.METRICS_BATCH_KEY,
            f"{len(items)},{len(ticked)},{t_pre - t0},{t_begun - t_pre},{time.perf_counter() - t0},{statuses},"
            f"{os.getpid()},{started_at},{time.time()},{started_at - max(item[1] for item in items)}",
        )
    return outcomes


def _run_order(result: Any) -> int:
    """Where a tick goes once the host answered for the due ticks of its batch: quiet ones first
    (persisted together at the next flush), then those that act (orders, signals or an error,
    each written at once), then the ticks the host did not run (not due yet, or not runnable)."""
    if result is None:
        return 2
    if isinstance(result, Exception):
        return 1
    return int(bool(result.get("intents") or result.get("exits") or result.get("entries")))


def run_due_in_hosts(
    batch: Batch,
    entries: list[tuple[str, float, int, Any]],
    tried: set[str],
    built: dict[str, dict[str, Any]],
    ran: dict[str, Any],
) -> None:
    """Run the user code of several due ticks of a batch together: one host round trip per tenant.

    Only ticks that will surely run are taken (begun, loaded, not paused, nothing in flight, not
    late, desired state applied, a quote); each is added to `tried`, its snapshot to `built` and the
    host's answer to `ran`. The tick then gets both in its input (`TickInput.snapshot`, `.ran`) and
    does everything else exactly as a tick run alone. With nothing else to wait for,
    the hosts run the ticks back to back instead of waking the worker between every two.
    """
    calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for iid, due, slot, began in entries:
        tried.add(iid)
        if began is None or began[0] != "ok" or began[2] is None:
            continue
        rt = began[2]
        quoted = runtime.is_quote_seq(slot)
        instance = batch.instances.get(iid)
        if (
            not rt["loaded"]
            or rt["paused"]
            or rt.get("inflight")
            or slot <= (rt["tick_seq"] if quoted else runtime.last_slot(rt))
            or time.time() - (due if quoted else slot)
            > max(conf.get("ENGINE_MAX_LATENESS"), 2.0 * (rt.get("freq") or 1))
            or instance is None
            or instance.mode == Mode.OFF
            or instance.tenant.killed_at is not None
            or not runtime.desired_applied(rt, instance.version_id, instance.config_revision, instance.config)
        ):
            continue
        quote = batch.quotes.get(instance.market_id)
        if not quote:
            continue
        snapshot = tick_snapshot(
            instance, quote, instance.mode, f"{iid}-{slot}", batch.trusted(instance), batch.histories
        )
        built[iid] = snapshot
        try:
            sync = sandboxes.ensure_runtime_loaded(instance, rt, iid)
        except Exception:  # the tick alone reports the load failure
            sandboxes.forget(iid)
            continue
        call = host_command(instance, iid, quote, snapshot, sync)
        calls.setdefault(str(instance.tenant_id), []).append((iid, call))
    for tenant_id, tenant_calls in calls.items():
        try:
            results = sandboxes.client().cycle_many(tenant_id, [call for _, call in tenant_calls])
        except Exception:
            logger.exception("batched host call failed; running the ticks one by one")
            results = [None] * len(tenant_calls)
        for (iid, _), result in zip(tenant_calls, results, strict=True):
            if result is None:
                sandboxes.forget(iid)  # not run: the host's copy is not what the tick expects
            else:
                ran[iid] = result
