"""Each command's reply (tick, signal cycle, load, render) checked, and one tick's strategy
outcome with its forged intents audited."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from sandbox import ErrorCode, Limits
from sandbox.context import bracket_problem
from stratbox.engine.replies.intents import order_intents
from stratbox.engine.replies.plain import (
    ReplyRefused,
    _fields,
    _short_text,
    check_logs,
    check_plain,
    clean_text,
    state_json,
)
from stratbox.trading.risk import Deny, deny_label
from tenants.services import audit_record

if TYPE_CHECKING:
    from stratbox.instances.models import StrategyInstance


WIDGET_TYPES = frozenset({"line_chart", "metric", "table", "text", "log"})
MAX_WIDGETS = 50
TICK_FIELDS = frozenset({"intents", "state", "logs", "receipts"})
SIGNAL_FIELDS = frozenset({"entries", "exits", "logs", "state"})
LOAD_FIELDS = frozenset({"config_schema", "state", "logs"})
RENDER_FIELDS = frozenset({"widgets"})
ENTRY_FIELDS = frozenset({"market", "side", "reason", "confidence", "sl", "tp"})
EXIT_FIELDS = frozenset({"position_id", "reason"})


def tick_reply(
    result: Any, *, prefix: str, mode: str, limits: Limits
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A tick-style reply checked: (``{"state", "state_json", "logs"}``, accepted intents, denials)."""
    reply = _fields(result, TICK_FIELDS, "the tick reply")
    text = state_json(reply.get("state"), limits)
    logs = check_logs(reply.get("logs"), limits)
    accepted, denied = order_intents(
        reply.get("intents"),
        reply.get("receipts"),
        prefix=prefix,
        mode=mode,
        quota=limits.max_orders_per_call,
    )
    return {"state": reply["state"], "state_json": text, "logs": logs, "intents": accepted}, accepted, denied


def signal_reply(
    result: Any, *, market_code: str, positions: int, limits: Limits
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A signal-cycle reply checked: (``{"entries", "exits", "state", "state_json", "logs"}``, skipped).

    An entry for another market than the instance's is skipped as ``FOREIGN_TARGET``."""
    reply = _fields(result, SIGNAL_FIELDS, "the signal reply")
    text = state_json(reply.get("state"), limits)
    logs = check_logs(reply.get("logs"), limits)
    entries, exits = reply.get("entries") or [], reply.get("exits") or []
    if type(entries) is not list or len(entries) > limits.max_signals_per_call:
        raise ReplyRefused(
            ErrorCode.BAD_OUTPUT, f"entries must be a list of at most {limits.max_signals_per_call}"
        )
    if type(exits) is not list or len(exits) > positions:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, "exits must be a list of at most one per open position")
    kept: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for index, raw in enumerate(entries):
        sig = _fields(raw, ENTRY_FIELDS, f"entries[{index}]")
        market, side, reason, confidence = (sig.get(k) for k in ("market", "side", "reason", "confidence"))
        if (
            not _short_text(market, 64)
            or type(side) is not str
            or side not in ("long", "short")
            or not _short_text(reason, 500)
            or not (type(confidence) is float or type(confidence) is int)
            or not math.isfinite(confidence)
            or not 0 <= confidence <= 1
            or bracket_problem(sig.get("sl"))
            or bracket_problem(sig.get("tp"))
        ):
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"entries[{index}] is not an entry signal")
        if market != market_code:
            skipped.append(
                {
                    "kind": "skipped",
                    "signal": "entry",
                    "deny_code": str(Deny.FOREIGN_TARGET),
                    "message": f"{deny_label(Deny.FOREIGN_TARGET)}: entries[{index}] names another market",
                }
            )
            continue
        kept.append(sig)
    for index, raw in enumerate(exits):
        sig = _fields(raw, EXIT_FIELDS, f"exits[{index}]")
        if not _short_text(sig.get("position_id"), 64) or not _short_text(sig.get("reason"), 500):
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"exits[{index}] is not an exit signal")
    clean = {"entries": kept, "exits": exits, "state": reply["state"], "state_json": text, "logs": logs}
    return clean, skipped


def load_reply(result: Any, limits: Limits) -> dict[str, Any]:
    """A load's answer: the state ``init()`` made (or restored) and the load's log lines."""
    reply = _fields(result, LOAD_FIELDS, "the load reply")
    state_json(reply.get("state"), limits)
    check_logs(reply.get("logs"), limits)
    return reply


def widgets_reply(result: Any, limits: Limits) -> list[Any]:
    """A render's widgets: plain storable data, at most ``MAX_WIDGETS`` objects with a known type."""
    reply = _fields(result, RENDER_FIELDS, "the render reply")
    widgets = reply.get("widgets")
    if type(widgets) is not list or len(widgets) > MAX_WIDGETS:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"widgets must be a list of at most {MAX_WIDGETS}")
    check_plain(
        widgets,
        what="widgets",
        code=ErrorCode.BAD_OUTPUT,
        max_depth=limits.max_json_depth,
        max_bytes=limits.max_render_bytes,
    )
    for index, widget in enumerate(widgets):
        if (
            type(widget) is not dict
            or type(widget.get("type")) is not str
            or widget["type"] not in WIDGET_TYPES
        ):
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"widgets[{index}] must be an object with a known type")
    return widgets


def error_fields(code: str, message: Any, line: Any, traceback: Any) -> dict[str, Any]:
    """The parts of an error a host reported, made storable (its code is already one of ours)."""
    return {
        "code": code,
        "message": clean_text(message, 4000),
        "line": line if type(line) is int and 0 < line < 10_000_000 else None,
        "traceback": clean_text(traceback, 20000) or None,
    }


def strategy_outcome(
    instance: StrategyInstance, result: Any, snapshot: dict[str, Any], *, signal: bool, limits: Limits
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """A tick's or signal cycle's reply checked for `instance`: (checked reply, order intents of a
    tick-style reply, denied or skipped actions). ``snapshot`` is the trusted one the engine sent:
    its mode and order-id prefix are the engine's, never the host's.

    A refused reply raises `ReplyRefused`; it and every forged intent are audited. ``signal`` says
    the instance is signal style; ``limits`` are those its host runs with."""
    try:
        if signal:
            positions = snapshot.get("positions") or []
            checked, skipped = signal_reply(
                result, market_code=instance.market.code, positions=len(positions), limits=limits
            )
            return checked, [], skipped
        checked, accepted, denied = tick_reply(
            result, prefix=snapshot["order_id_prefix"], mode=snapshot["mode"], limits=limits
        )
    except ReplyRefused as exc:
        _audit(instance, snapshot, {"refused": str(exc.code), "message": exc.message})
        raise
    if denied:
        _audit(
            instance,
            snapshot,
            {"denied": [a["deny_code"] for a in denied], "message": denied[0]["message"]},
        )
    return checked, accepted, denied


def _audit(instance: StrategyInstance, snapshot: dict[str, Any], what: dict[str, Any]) -> None:
    audit_record(
        tenant=instance.tenant,
        actor=None,
        actor_label="engine",
        action="instance.host_reply_refused",
        target=instance,
        after={"order_id_prefix": snapshot.get("order_id_prefix"), "mode": snapshot.get("mode"), **what},
    )
