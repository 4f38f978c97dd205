"""Order intents from a host, one by one: quota, this tick's client_order_id, no target, mode or
status of their own, exact types; a forged one becomes a denied action."""

from __future__ import annotations

from typing import Any

from sandbox import ErrorCode
from stratbox.engine.replies.plain import ReplyRefused, _fields, _number, _short_text, _step
from stratbox.trading.risk import Deny, deny_label

ORDER_SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
RECEIPT_STATUSES = frozenset({"submitted", "shadow", "rejected"})
MAX_TAG_CHARS = 64
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
