"""What a tick tells: its outcome (to the batch or task that ran it), each intent's action row (as stored on the run and shown on the dashboard)
and the tick's dashboard events (its log lines, its actions, its run summary)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stratbox.engine import events
from stratbox.engine.models import Run
from stratbox.instances.models import StrategyInstance


@dataclass
class TickOutcome:
    status: str  # ok | error | timeout | skipped | duplicate | coalesced | not_loaded | paused | off
    run_id: int | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    recovered: bool = False


def action_of(intent: dict[str, Any], result: Any) -> dict[str, Any]:
    order = getattr(result, "order", None)
    return {
        "kind": "shadow"
        if getattr(result, "status", "") == "shadow"
        else ("denied" if getattr(result, "deny_code", None) else "order"),
        "client_order_id": intent.get("client_order_id"),
        "side": intent.get("side"),
        "qty": intent.get("qty")
        if type(intent.get("qty")) in (int, float) and math.isfinite(intent["qty"])
        else None,
        "type": intent.get("type"),
        # The fill price once filled (a market order has no price of its own), else the limit.
        "price": float(order.fill_price)
        if order is not None and getattr(order, "fill_price", None) is not None
        else (
            intent.get("price")
            if type(intent.get("price")) in (int, float) and math.isfinite(intent["price"])
            else None
        ),
        # The strategy's tag; for signal-style orders "entry:<reason>" / "exit:<reason>".
        "tag": intent.get("tag") if type(intent.get("tag")) is str else None,
        "status": getattr(result, "status", None),
        "deny_code": getattr(result, "deny_code", None),
        "message": getattr(result, "message", "") or "",
        "order_id": str(order.pk) if order is not None else None,
    }


def publish_tick(
    instance: StrategyInstance,
    seq: int,
    finished: float,
    logs: list[Any],
    actions: list[dict[str, Any]],
    run: Run | None,
    status: str,
    started: float,
    error: dict[str, Any] | None = None,
) -> None:
    batch = tick_events(seq, finished, logs, actions, run, status, started, error)
    events.publish_many(tenant_id=instance.tenant_id, instance_id=instance.pk, events=batch)


def tick_events(
    seq: int,
    finished: float,
    logs: list[Any],
    actions: list[dict[str, Any]],
    run: Run | None,
    status: str,
    started: float,
    error: dict[str, Any] | None = None,
    orders: list[dict[str, Any]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The dashboard events of one tick: its log lines (≤ 20), its actions, its orders' status
    changes (`trading.order_events` payloads), its run summary."""
    batch: list[tuple[str, dict[str, Any]]] = []
    for line in logs[:20]:
        if isinstance(line, dict):
            batch.append(
                (
                    "log",
                    {
                        "level": line.get("level", "info"),
                        "msg": str(line.get("msg", ""))[:500],
                        "tick_seq": seq,
                    },
                )
            )
    for action in actions:
        batch.append(("action", action | {"tick_seq": seq}))
    for change in orders or ():
        batch.append(("order", change | {"tick_seq": seq}))
    batch.append(
        (
            "run",
            {
                "run_id": run.pk if run else None,
                "tick_seq": seq,
                "status": status,
                "duration_ms": round((finished - started) * 1000, 3),
                "finished_at": finished,
                "actions": len(actions),
                "error": {"code": error["code"], "message": error["message"], "line": error.get("line")}
                if error
                else None,
            },
        )
    )
    return batch
