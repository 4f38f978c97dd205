"""Trusted re-checks of everything a sandbox host answers, before the engine uses any of it.

Assume the host is fully controlled by its tenant (an escape from the language layer, a forged
reply): nothing it sends is used until it passed these checks, whatever the host checked itself.

- Shape: a reply is an exact ``dict`` holding only the fields its command produces. A reply with
  anything else (``mode``, ``snapshot``, ``order_id_prefix``, ...) is refused: the engine decides
  the mode and builds the snapshot, a host never does.
- Plain data: exact types (``type(x) is str``, never ``isinstance``), so no value can make trusted
  code run a special method; finite floats; ints within the digit limit; no NUL and no lone
  surrogate in any string or key (PostgreSQL's text and jsonb refuse both, and a refusal there
  would fail a whole batch write); bounded depth and size. State problems are ``BAD_STATE``, the
  rest ``BAD_OUTPUT``, sizes ``OUTPUT_LIMIT``; each message names the path (``state.rows[3].name``)
  and never echoes the value. The tick fails as any failed call does: recorded as a failed run,
  the last good state kept.
- Order intents, one by one: at most the per-call quota (``ORDER_QUOTA_EXCEEDED``), this
  instance's own client_order_id for this tick (``ORDER_ID_MISMATCH``), no market or account of
  their own (``FOREIGN_TARGET``), no status or mode of their own and receipts that agree with the
  instance's mode (``MODE_MISMATCH``), exact types and finiteness, side and type values and a
  clean tag (``INVALID_ORDER``). A forged intent is denied with its code, recorded in the run's
  actions like every denial (and so pushed to the dashboard), audited once per reply, and never
  reaches ``order_place``: no order row, no broker call.

The cost per tick is a few exact-type tests per field and one walk over the state (which the
engine serialises anyway: the JSON text is handed back for reuse). No deep copies.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any

from sandbox import ErrorCode, Limits, SandboxError
from sandbox.context import LOG_LEVELS, bracket_problem
from stratbox.trading.risk import Deny, deny_label
from tenants.services import audit_record

# The digit limit: Python's own bound on int <-> str conversion, the one the host applies too.
MAX_INT_DIGITS = sys.int_info.default_max_str_digits
_INT_BOUND = 10**MAX_INT_DIGITS
ORDER_SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
RECEIPT_STATUSES = frozenset({"submitted", "shadow", "rejected"})
WIDGET_TYPES = frozenset({"line_chart", "metric", "table", "text", "log"})
MAX_WIDGETS = 50
HISTORY_KEY = "_sb_history"
MAX_TAG_CHARS = 64

TICK_FIELDS = frozenset({"intents", "state", "logs", "receipts"})
SIGNAL_FIELDS = frozenset({"entries", "exits", "logs", "state"})
LOAD_FIELDS = frozenset({"config_schema", "state", "logs"})
RENDER_FIELDS = frozenset({"widgets"})
INTENT_FIELDS = frozenset(
    {
        "kind",
        "client_order_id",
        "side",
        "qty",
        "type",
        "price",
        "tag",
        # the order model's options (judged again by `trading.risk.validate_intent`)
        "stop_price",
        "tif",
        "sl",
        "tp",
        "reduce_only",
        "expire_at",
    }
)
CANCEL_FIELDS = frozenset({"kind", "target"})
# Fields a forged intent may carry to aim elsewhere or to claim a status: each has its own code.
TARGET_FIELDS = frozenset(
    {"market", "market_id", "account", "account_id", "instance", "instance_id", "tenant", "tenant_id"}
)
STATUS_FIELDS = frozenset({"status", "mode", "submitted", "is_shadow", "shadow"})
RECEIPT_FIELDS = frozenset({"client_order_id", "status", "reason"})
ENTRY_FIELDS = frozenset({"market", "side", "reason", "confidence", "sl", "tp"})
EXIT_FIELDS = frozenset({"position_id", "reason"})

if TYPE_CHECKING:
    from stratbox.instances.models import StrategyInstance

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


class ReplyRefused(SandboxError):
    """A host reply the engine refuses to use (its code: BAD_STATE, BAD_OUTPUT or OUTPUT_LIMIT)."""


class _Bad(Exception):
    """A problem found while walking a value; the path is collected while the walk unwinds."""

    def __init__(self, code: ErrorCode, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem
        self.path: list[Any] = []


def _step(key: Any) -> str:
    if type(key) is int:
        return f"[{key}]"
    if _NAME.match(key):
        return f".{key}"
    return "[" + json.dumps(key[:40]) + "]"  # ASCII-only: NUL and surrogates are escaped


def _refuse(what: str, bad: _Bad) -> ReplyRefused:
    path = what + "".join(_step(k) for k in reversed(bad.path))
    return ReplyRefused(bad.code, f"{path} {bad.problem}")


def text_problem(value: str) -> str | None:
    """Why an exact ``str`` cannot be stored (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate"
    return None


def clean_text(value: Any, limit: int) -> str:
    """Untrusted text made storable (for error messages and tracebacks a host reports)."""
    if type(value) is not str:
        return ""
    value = value[:limit]
    if text_problem(value) is None:
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _walk(value: Any, code: ErrorCode, depth: int, max_depth: int, budget: list[int]) -> None:
    """Plain JSON data only; ``budget`` is a lower bound of the bytes its JSON text still may take."""
    t = type(value)
    if t is str:
        budget[0] -= len(value) + 2
        if budget[0] < 0:
            raise _Bad(ErrorCode.OUTPUT_LIMIT, "is too large")
        problem = text_problem(value)
        if problem:
            raise _Bad(code, problem)
        return
    budget[0] -= 2
    if budget[0] < 0:
        raise _Bad(ErrorCode.OUTPUT_LIMIT, "is too large")
    if t is float:
        if not math.isfinite(value):
            raise _Bad(code, "is not a finite number (NaN and Infinity are not JSON)")
        return
    if t is int:
        if not -_INT_BOUND < value < _INT_BOUND:
            raise _Bad(code, f"is an int of more than {MAX_INT_DIGITS} digits")
        return
    if t is bool or value is None:
        return
    if t is dict:
        if depth >= max_depth:
            raise _Bad(code, f"is nested more than {max_depth} levels deep")
        for key, item in value.items():
            if type(key) is not str:
                raise _Bad(code, "has a key that is not a string")
            budget[0] -= len(key) + 3
            problem = text_problem(key)
            if problem:
                raise _Bad(code, f"has a key that {problem}")
            try:
                _walk(item, code, depth + 1, max_depth, budget)
            except _Bad as bad:
                bad.path.append(key)
                raise
        return
    if t is list:
        if depth >= max_depth:
            raise _Bad(code, f"is nested more than {max_depth} levels deep")
        for index, item in enumerate(value):
            try:
                _walk(item, code, depth + 1, max_depth, budget)
            except _Bad as bad:
                bad.path.append(index)
                raise
        return
    # Never the value's own type name: a metaclass could run code on that lookup.
    raise _Bad(
        code, "holds a value of another type (only objects, lists, strings, numbers, booleans and null)"
    )


def check_plain(value: Any, *, what: str, code: ErrorCode, max_depth: int, max_bytes: int) -> None:
    """Refuse anything in ``value`` that is not plain, storable JSON data."""
    try:
        _walk(value, code, 0, max_depth, [max_bytes])
    except _Bad as bad:
        if bad.code is ErrorCode.OUTPUT_LIMIT:
            bad.problem = f"is larger than {max_bytes} bytes"
        raise _refuse(what, bad) from None


def _fields(value: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    """An exact dict with exact-str keys, all of them allowed (so its lookups run no user code)."""
    if type(value) is not dict:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} must be an object")
    for key in value:
        if type(key) is not str:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} has a key that is not a string")
        if key not in allowed:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}{_step(key)} is not a field a host may send")
    return value


def state_json(value: Any, limits: Limits) -> str:
    """Check a state a host returned; its compact JSON text (what the engine persists)."""
    if type(value) is not dict:
        raise ReplyRefused(ErrorCode.BAD_STATE, "state must be an object")
    # The host adds the signal-style price history to the state after its own size check.
    max_bytes = limits.max_state_bytes + 32 * limits.max_history + 64
    check_plain(
        value, what="state", code=ErrorCode.BAD_STATE, max_depth=limits.max_json_depth, max_bytes=max_bytes
    )
    history = value.get(HISTORY_KEY)
    if history is not None and (
        type(history) is not list
        or len(history) > limits.max_history
        or any(type(p) is not float and type(p) is not int for p in history)
    ):
        raise ReplyRefused(
            ErrorCode.BAD_STATE, f"state.{HISTORY_KEY} must be a list of at most {limits.max_history} prices"
        )
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    if len(text) > max_bytes:
        raise ReplyRefused(ErrorCode.OUTPUT_LIMIT, f"state is {len(text)} bytes of JSON (limit {max_bytes})")
    return text


def check_logs(value: Any, limits: Limits, what: str = "logs") -> list[dict[str, str]]:
    if value is None:
        return []
    if type(value) is not list:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} must be a list")
    if len(value) > limits.max_log_lines:
        raise ReplyRefused(ErrorCode.OUTPUT_LIMIT, f"{what} has more than {limits.max_log_lines} lines")
    max_chars = limits.max_log_chars + 1  # the host marks a cut line with one "…"
    for index, line in enumerate(value):
        item = _fields(line, frozenset({"level", "msg"}), f"{what}[{index}]")
        level, msg = item.get("level"), item.get("msg")
        if type(level) is not str or level not in LOG_LEVELS:
            raise ReplyRefused(
                ErrorCode.BAD_OUTPUT, f"{what}[{index}].level must be one of {', '.join(sorted(LOG_LEVELS))}"
            )
        if type(msg) is not str:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}[{index}].msg must be a string")
        if len(msg) > max_chars:
            raise ReplyRefused(
                ErrorCode.OUTPUT_LIMIT, f"{what}[{index}].msg is longer than {max_chars} characters"
            )
        problem = text_problem(msg)
        if problem:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}[{index}].msg {problem}")
    return value


def _short_text(value: Any, limit: int) -> bool:
    return type(value) is str and len(value) <= limit and text_problem(value) is None


def _receipt_statuses(value: Any, quota: int) -> dict[str, str]:
    """client_order_id -> the status the host told the strategy (receipts are otherwise unused)."""
    if value is None:
        return {}
    if type(value) is not list:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, "receipts must be a list")
    if len(value) > 2 * quota:
        raise ReplyRefused(ErrorCode.OUTPUT_LIMIT, f"receipts has more than {2 * quota} entries")
    out: dict[str, str] = {}
    for index, raw in enumerate(value):
        receipt = _fields(raw, RECEIPT_FIELDS, f"receipts[{index}]")
        coid, status, reason = receipt.get("client_order_id"), receipt.get("status"), receipt.get("reason")
        if (
            not (coid is None or _short_text(coid, 200))
            or type(status) is not str
            or status not in RECEIPT_STATUSES
            or not (reason is None or _short_text(reason, 64))
        ):
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"receipts[{index}] is not a receipt")
        if coid is not None:
            out[coid] = status
    return out


def _number(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value) and value > 0


def _is_cancel(intent: dict[str, Any]) -> bool:
    kind = intent.get("kind")
    return type(kind) is str and kind == "cancel"  # exact type: a host's str subclass runs nothing


def _intent_problem(
    intent: dict[str, Any], prefix: str, quota: int, seen: set[str]
) -> tuple[Deny, str] | None:
    """The deny code and message for one intent (an exact dict with exact-str keys), or None."""
    if _is_cancel(intent):  # cancel one of the instance's own orders (by its id)
        extra = set(intent) - CANCEL_FIELDS
        if extra:
            return Deny.INVALID_ORDER, f"intent{_step(sorted(extra)[0])}: not a cancel field"
        if not _short_text(intent.get("target"), 128):
            return Deny.INVALID_ORDER, "target: must be a client_order_id of at most 128 characters"
        return None
    for key in intent:
        if key in INTENT_FIELDS:
            continue
        if key in TARGET_FIELDS:
            return (
                Deny.FOREIGN_TARGET,
                f"the intent names its own {key}: orders go to the instance's market and account only",
            )
        if key in STATUS_FIELDS:
            return Deny.MODE_MISMATCH, f"the intent claims its own {key}: the instance's mode alone decides"
        return Deny.INVALID_ORDER, f"intent{_step(key)}: not an order field"
    kind = intent.get("kind")
    if type(kind) is not str or kind != "order":
        return Deny.INVALID_ORDER, "kind: must be 'order'"
    coid = intent.get("client_order_id")
    number = coid[len(prefix) + 1 :] if type(coid) is str and coid.startswith(prefix + "-") else ""
    if (
        not number.isascii()
        or not number.isdigit()
        or number[0] == "0"
        or len(number) > 6
        or int(number) > quota
        or coid in seen
    ):
        return (
            Deny.ORDER_ID_MISMATCH,
            f"client_order_id: must be this tick's '{prefix}-<n>' (n from 1 to {quota}, once each)",
        )
    seen.add(coid)
    side, otype, qty, price, tag = (intent.get(k) for k in ("side", "type", "qty", "price", "tag"))
    if type(side) is not str or side not in ORDER_SIDES:
        return Deny.INVALID_ORDER, "side: must be 'buy' or 'sell'"
    if type(otype) is not str or otype not in ORDER_TYPES:
        return Deny.INVALID_ORDER, "type: must be 'market', 'limit', 'stop' or 'stop_limit'"
    if not _number(qty):
        return Deny.INVALID_ORDER, "qty: must be a finite, positive int or float"
    if not (price is None and otype in ("market", "stop")) and not _number(price):
        return (
            Deny.INVALID_ORDER,
            "price: must be a finite, positive int or float for a limit order, null otherwise",
        )
    if tag is not None and not _short_text(tag, MAX_TAG_CHARS):
        return (
            Deny.INVALID_ORDER,
            f"tag: must be a string of at most {MAX_TAG_CHARS} storable characters or null",
        )
    return None


def denied_action(intent: Any, code: Deny, message: str) -> dict[str, Any]:
    """A denial as the engine records actions; it echoes only fields that are safe to store."""
    fields = intent if type(intent) is dict and all(type(k) is str for k in intent) else {}
    coid, side, otype, qty, price = (
        fields.get(k) for k in ("client_order_id", "side", "type", "qty", "price")
    )
    return {
        "kind": "denied",
        "client_order_id": coid if _short_text(coid, 200) else None,
        "side": side if type(side) is str and side in ORDER_SIDES else None,
        "qty": qty if _number(qty) else None,
        "type": otype if type(otype) is str and otype in ORDER_TYPES else None,
        "price": price if _number(price) else None,
        "status": "rejected",
        "deny_code": str(code),
        "message": f"{deny_label(code)}: {message}"[:300],
        "order_id": None,
    }


def order_intents(
    intents: Any, receipts: Any, *, prefix: str, mode: str, quota: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a tick's order intents into (accepted, denied actions); see the module docstring."""
    if intents is None:
        intents = []
    if type(intents) is not list:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, "intents must be a list")
    statuses = _receipt_statuses(receipts, quota)
    if len(intents) > quota:
        return [], [
            denied_action(
                None,
                Deny.ORDER_QUOTA_EXCEEDED,
                f"{len(intents)} order intents in one call (at most {quota}); none was placed",
            )
        ]
    expected = "submitted" if mode == "active" else "shadow"
    accepted: list[dict[str, Any]] = []
    denied: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, intent in enumerate(intents):
        if type(intent) is not dict or not all(type(k) is str for k in intent):
            denied.append(denied_action(None, Deny.INVALID_ORDER, f"intents[{index}]: must be an object"))
            continue
        problem = _intent_problem(intent, prefix, quota, seen)
        if problem is None and not _is_cancel(intent):
            told = statuses.get(intent["client_order_id"])
            if told is not None and told != "rejected" and told != expected:
                problem = (
                    Deny.MODE_MISMATCH,
                    f"the host told the strategy '{told}' while the instance is in {mode} mode",
                )
        if problem is not None:
            denied.append(denied_action(intent, *problem))
        else:
            accepted.append(intent)
    return accepted, denied


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
