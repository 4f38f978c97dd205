"""When a tick goes wrong: a failed tick (recorded, the last good state kept, counted towards the
circuit breaker), the daily-loss check after a tick, and the engine's automatic pause."""

from __future__ import annotations

import logging
import time
import traceback as tb_module
from decimal import Decimal
from typing import Any

from django.db import transaction

from sandbox import SandboxError
from stratbox.engine import conf, runtime, sandboxes
from stratbox.engine import replies as host_replies
from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.models import RunStatus
from stratbox.engine.runs import record_run
from stratbox.engine.ticks.shaping import TickOutcome, publish_tick
from stratbox.instances.models import Mode, StrategyInstance
from tenants.services import audit_record

logger = logging.getLogger(__name__)


def error_dict(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SandboxError):
        # A host's own words: made storable (no NUL or lone surrogate reaches PostgreSQL).
        return host_replies.error_fields(str(exc.code), exc.message, exc.line, exc.traceback)
    return {
        "code": "ENGINE_ERROR",
        "message": f"{type(exc).__name__}: {exc}"[:1000],
        "line": None,
        "traceback": None,
        "engine_traceback": tb_module.format_exc()[-4000:],
    }


def fail(
    instance: StrategyInstance,
    rt: dict[str, Any],
    exc: BaseException,
    *,
    slot: int,
    seq: int,
    due_at: float,
    started: float,
    trigger: str,
    mode: str,
    config: dict[str, Any],
) -> TickOutcome:
    """A failed tick: record it, keep the last good state, count towards the circuit breaker."""
    iid = str(instance.pk)
    sandboxes.forget(iid)  # the host may hold a half-mutated state; reload from Redis next time
    error = error_dict(exc)
    status = RunStatus.TIMEOUT if error["code"] == "TIMEOUT" else RunStatus.ERROR
    finished = time.time()
    run = record_run(
        instance=instance,
        trigger=trigger,
        status=status,
        seq=seq,
        due_at=due_at,
        started=started,
        finished=finished,
        config=config,
        mode=mode,
        logs=[],
        actions=[],
        error=error,
    )
    r = runtime.r()
    key = runtime.rt_key(iid)
    pipe = r.pipeline()
    # Only the strategy's own failures count towards its circuit breaker: a platform fault (database
    # down, ...) is recorded but must not pause every instance of every tenant.
    pipe.hincrby(key, "consecutive_failures", 0 if error["code"] == "ENGINE_ERROR" else 1)
    pipe.hset(
        key,
        mapping={
            "last_error": runtime.dumps(
                {
                    "code": error["code"],
                    "message": error["message"],
                    "line": error.get("line"),
                    "at": finished,
                    "run_id": run.pk,
                }
            ),
            "last_tick_at": finished,
            "worker": runtime.worker_id(),
            "tick_seq": seq,
        },
    )
    pipe.hdel(key, "inflight")
    pipe.sadd(runtime.DIRTY_KEY, iid)
    runtime.stats_incr(pipe, iid, runs=1, failed=1)
    pipe.hset(runtime.stats_key(iid), "last_run_at", finished)
    failures = pipe.execute()[0]
    publish_tick(instance, seq, finished, [], [], run, status, started, error=error)
    if failures >= conf.get("ENGINE_CIRCUIT_BREAKER_FAILURES"):
        auto_pause(
            instance,
            PauseReason.CIRCUIT_BREAKER,
            {"consecutive_failures": failures, "last_error": error["code"]},
        )
    if error["code"] == "ENGINE_ERROR":
        logger.error("engine error on %s: %s", iid, error.get("engine_traceback"))
    return TickOutcome(status=status, run_id=run.pk, error=error)


def daily_loss_check(
    instance: StrategyInstance,
    mode: str,
    actions: list[dict[str, Any]],
    snapshot: dict[str, Any],
    quote: dict[str, Any],
    filled: list[Any],
) -> str | None:
    """The pause reason if the day's loss reached the instance's limit after this tick.

    The day's P&L is the trusted snapshot's (realized today plus unrealized, at this tick's quote)
    moved by this tick's own fills: at a mark m, a fill of q at price p with fee f changes it by
    q·(m − p) − f for a buy and q·(p − m) − f for a sell (the cash paid against the value marked,
    the same whether it opens, adds or closes). A replayed tick (duplicates) and anything filled
    since the snapshot by others are not counted: the risk gate checks the stored figures under its
    locks before every order, and denies DAILY_LOSS_LIMIT, which pauses the instance too."""
    if any(a.get("deny_code") == "DAILY_LOSS_LIMIT" for a in actions):
        return PauseReason.DAILY_LOSS_LIMIT
    if mode != Mode.ACTIVE:
        return None
    today = (snapshot.get("pnl") or {}).get("today")
    if today is None:
        return None
    pnl = Decimal(today)
    if quote.get("price") is not None:
        mark = Decimal(str(quote["price"]))
        for order in filled:
            value = order.qty * (mark - order.fill_price)
            pnl += (value if order.side == "buy" else -value) - order.fee
    if pnl <= -Decimal(instance.max_daily_loss):
        return PauseReason.DAILY_LOSS_LIMIT
    return None


def auto_pause(instance: StrategyInstance, reason: str, details: dict[str, Any]) -> None:
    with transaction.atomic():
        if pause_runtime(instance, reason):
            audit_record(
                tenant=instance.tenant,
                actor=None,
                actor_label="engine",
                action="instance.auto_pause",
                target=instance,
                after={"paused": True, "reason": reason, **details},
            )
