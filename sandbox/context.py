"""The capability contexts handed to user code (trusted code running inside the host).

A context never performs I/O: reads come from the snapshot the engine sent with the call and
writes become *intents* returned to the engine, which re-checks them in trusted code. Order
arguments are checked with exact types and finiteness; receipts say ``submitted`` (active),
``shadow`` (observe) or ``rejected`` with a reason code. Every context is revoked when its call
returns, so a context saved in ``render()`` or kept by a finaliser can no longer act.

Internals live in ``_``-prefixed slots, which the policy makes unreachable from user code.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.barhistory import Columns, PriceHistory, history_args, history_window
from sandbox.limits import Limits
from sandbox.outputs import copy_json, text_problem
from sandbox.sdk import OrderReceipt, Position

LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "notify"})  # notify: context.notify(text)
ORDER_SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
ORDER_TIFS = frozenset({"gtc", "ioc", "fok", "day"})
OPEN_ORDER_STATUSES = frozenset({"new", "accepted", "partially_filled", "unknown"})


_QUOTA_RECEIPT = OrderReceipt(None, "rejected", "ORDER_QUOTA_EXCEEDED")  # immutable, safe to share


class ContextRevoked(RuntimeError):
    """Raised when user code uses a context after its call returned."""


class CallRecord:
    """What one call into user code produced: logs, order intents, receipts, overflow flags."""

    __slots__ = (
        "limits",
        "logs",
        "intents",
        "receipts",
        "log_overflow",
        "orders_attempted",
        "drop_logs",
        "logs_dropped",
        "bad_output",
    )

    def __init__(self, limits: Limits, drop_logs: bool = False) -> None:
        self.limits = limits
        self.logs: list[dict[str, str]] = []
        self.intents: list[dict[str, Any]] = []
        self.receipts: list[dict[str, Any]] = []
        self.log_overflow = False
        self.orders_attempted = 0
        self.drop_logs = drop_logs  # backtests keep the first lines and count the rest
        self.logs_dropped = 0
        self.bad_output: str | None = None  # a log line that could not be stored (fails the call)

    def log(self, level: Any, msg: Any) -> None:
        if len(self.logs) >= self.limits.max_log_lines:
            if self.drop_logs:
                self.logs_dropped += 1
            else:
                self.log_overflow = True
            return
        level = level if type(level) is str and level in LOG_LEVELS else "info"
        text = msg if type(msg) is str else str(msg)
        if len(text) > self.limits.max_log_chars:
            text = text[: self.limits.max_log_chars] + "…"
        problem = text_problem(text)
        if problem is not None:
            if self.bad_output is None:
                self.bad_output = f"log line {len(self.logs) + 1} {problem}"
            return
        self.logs.append({"level": level, "msg": text})


def order_number(value: Any) -> float | None:
    """An order's qty or price as a finite float: exact int, float or finite Decimal; else None.

    Exact types only (no lying subclasses); a huge int or Decimal that no float can hold is None.
    """
    t = type(value)
    if t is float:
        return value if math.isfinite(value) else None
    if t is int:
        return float(value) if -(1 << 1000) < value < (1 << 1000) else None
    if t is Decimal:
        if not value.is_finite():
            return None
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def order_problem(
    side: Any, qty: Any, type_: Any, price: Any, tag: Any, stop_price: Any = None
) -> str | None:
    """Reason code for refusing order arguments, or None. Exact types only: no lying subclasses."""
    if type(side) is not str or side not in ORDER_SIDES:
        return "INVALID_SIDE"
    q = order_number(qty)
    if q is None or q <= 0 or q > 1e12:
        return "INVALID_QTY"
    if type(type_) is not str or type_ not in ORDER_TYPES:
        return "INVALID_TYPE"
    if type_ in ("limit", "stop_limit") or price is not None:
        p = order_number(price)
        if p is None or p <= 0:
            return "INVALID_PRICE"
    if type_ in ("stop", "stop_limit") or stop_price is not None:
        p = order_number(stop_price)
        if p is None or p <= 0 or type_ not in ("stop", "stop_limit"):
            return "INVALID_STOP_PRICE"
    if tag is not None and (type(tag) is not str or len(tag) > 64 or text_problem(tag) is not None):
        return "INVALID_TAG"
    return None


def bracket_problem(value: Any) -> str | None:
    """A stop-loss / take-profit level: a positive price, or a fraction of the entry as ``"2%"``."""
    if value is None:
        return None
    if type(value) is str:
        if not value.endswith("%") or len(value) > 12:
            return "INVALID_BRACKET"
        try:
            frac = float(value[:-1])
        except ValueError:
            return "INVALID_BRACKET"
        return None if math.isfinite(frac) and 0 < frac < 100 else "INVALID_BRACKET"
    p = order_number(value)
    return None if p is not None and p > 0 else "INVALID_BRACKET"


def order_options_problem(tif: Any, reduce_only: Any, sl: Any, tp: Any, expire_at: Any) -> str | None:
    """Reason code for refusing the order's options (time in force, reduce-only, brackets, expiry)."""
    if type(tif) is not str or tif not in ORDER_TIFS:
        return "INVALID_TIF"
    if type(reduce_only) is not bool:
        return "INVALID_REDUCE_ONLY"
    if bracket_problem(sl) or bracket_problem(tp):
        return "INVALID_BRACKET"
    if (sl is not None or tp is not None) and reduce_only:
        return "INVALID_BRACKET"
    if expire_at is not None:
        e = order_number(expire_at)
        if e is None or e <= 0:
            return "INVALID_EXPIRY"
    return None


def bracket_value(value: Any) -> float | str | None:
    """A checked bracket level as the broker takes it: a float price or the ``"n%"`` string."""
    if value is None or type(value) is str:
        return value
    return order_number(value)


def _copy_dict(value: Any) -> dict[str, Any] | None:
    """A fresh copy of a snapshot object (None when absent or not an object)."""
    return {k: copy_json(v) for k, v in value.items()} if type(value) is dict else None


def _copy_list(value: Any) -> list[dict[str, Any]]:
    """A fresh copy of a snapshot list of objects (entries that are not objects are dropped)."""
    if type(value) is not list and type(value) is not tuple:
        return []
    return [{k: copy_json(v) for k, v in item.items()} for item in value if type(item) is dict]


def snapshot_bars(snapshot: dict[str, Any]) -> Columns | None:
    """The recent bars the engine put into a snapshot (columns, oldest first), if any."""
    bars = snapshot.get("history")
    return bars if type(bars) is dict else None


def _price(value: Any) -> float | None:
    """A snapshot price: a finite number or None."""
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        return value
    return None


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value is not None else Decimal(0)
    except (InvalidOperation, ValueError):
        return Decimal(0)


class TickContext:
    """``self.context`` during on_tick (mode from the snapshot) and render (read-only)."""

    __slots__ = ("_rec", "_snap", "_revoked", "_readonly", "_seq", "_price")

    def __init__(
        self, rec: CallRecord, snapshot: dict[str, Any], price: Any = None, readonly: bool = False
    ) -> None:
        self._rec = rec
        self._snap = snapshot
        self._revoked = False
        self._readonly = readonly
        self._seq = 0
        quote = snapshot.get("quote") or {}
        self._price = price if price is not None else quote.get("price")

    def _check(self) -> None:
        if self._revoked:
            raise ContextRevoked(
                "this context is no longer valid: a context only works during the call that received it"
            )

    def _revoke(self) -> None:
        self._revoked = True

    def __repr__(self) -> str:
        return "<context>"

    @property
    def mode(self) -> str:
        self._check()
        return "observe" if self._snap.get("mode") != "active" else "active"

    @property
    def now(self) -> float | None:
        self._check()
        return self._snap.get("now")

    @property
    def market(self) -> str | None:
        self._check()
        return (self._snap.get("quote") or {}).get("market")

    def get_price(self) -> float | None:
        self._check()
        return self._price

    @property
    def plugin_signals(self) -> dict[str, Any]:
        """Sidecar plugin signals ``{plugin: {machine fields}}`` (a fresh copy: read-only data)."""
        self._check()
        return _copy_dict(self._snap.get("plugin_signals")) or {}

    def get_quote(self) -> dict[str, Any] | None:
        self._check()
        return _copy_dict(self._snap.get("quote"))

    def history(self, n: Any, field: Any = "close") -> list[float]:
        """The last ``n`` values of ``field`` (ts, open, high, low, close, volume) of the market's
        recent bars, oldest first, ending with the current one (fewer while fewer exist)."""
        self._check()
        history_args(n, field)
        return history_window(snapshot_bars(self._snap), None, 0, n, field)

    def get_orders(self) -> list[dict[str, Any]]:
        self._check()
        return _copy_list(self._snap.get("orders"))

    def get_position(self) -> dict[str, Any] | None:
        self._check()
        return _copy_dict(self._snap.get("position"))

    def get_positions(self) -> list[dict[str, Any]]:
        self._check()
        return _copy_list(self._snap.get("positions"))

    def get_balance(self) -> Decimal:
        self._check()
        return _decimal(self._snap.get("balance"))

    def log(self, msg: Any, level: Any = "info") -> None:
        self._check()
        self._rec.log(level, msg)

    def notify(self, text: Any) -> None:
        """Send the tenant a notification (a `notify` log line; the engine delivers it, rate-limited)."""
        self._check()
        self._rec.log("notify", text)

    def get_equity(self) -> float | None:
        """Cash plus the position marked at the current price (None before the first quote)."""
        self._check()
        balance = _decimal(self._snap.get("balance"))
        position = self._snap.get("position") or {}
        raw = position.get("qty") if type(position) is dict else None
        qty = float(raw) if type(raw) is int or type(raw) is float else 0.0
        price = _price(self._price)
        if price is None:
            return float(balance) if not qty else None
        return float(balance) + qty * float(price)

    def place_order(
        self,
        side: Any,
        qty: Any,
        type: Any = "market",
        price: Any = None,
        tag: Any = None,
        stop_price: Any = None,
        tif: Any = "gtc",
        sl: Any = None,
        tp: Any = None,
        reduce_only: Any = False,
        expire_at: Any = None,
    ) -> OrderReceipt:
        self._check()
        rec = self._rec
        rec.orders_attempted += 1
        if len(rec.intents) >= rec.limits.max_orders_per_call:  # cheap path for order floods
            if len(rec.receipts) < rec.limits.max_orders_per_call * 2:
                rec.receipts.append(
                    {"client_order_id": None, "status": "rejected", "reason": "ORDER_QUOTA_EXCEEDED"}
                )
            return _QUOTA_RECEIPT
        if self._readonly:
            return self._reject(None, "READ_ONLY_CALL")
        reason = order_problem(side, qty, type, price, tag, stop_price) or order_options_problem(
            tif, reduce_only, sl, tp, expire_at
        )
        if reason is not None:
            return self._reject(None, reason)
        if len(rec.intents) >= rec.limits.max_orders_per_call:
            return self._reject(None, "ORDER_QUOTA_EXCEEDED")
        self._seq += 1
        prefix = self._snap.get("order_id_prefix") or "order"
        coid = f"{prefix}-{self._seq}"
        status = "submitted" if self._snap.get("mode") == "active" else "shadow"
        intent: dict[str, Any] = {
            "kind": "order",
            "client_order_id": coid,
            "side": side,
            "qty": order_number(qty),
            "type": type,
            "price": order_number(price) if price is not None else None,
            "tag": tag,
        }
        # The order model's options travel only when set: a plain order's intent is unchanged.
        if stop_price is not None:
            intent["stop_price"] = order_number(stop_price)
        if tif != "gtc":
            intent["tif"] = tif
        if reduce_only:
            intent["reduce_only"] = True
        if expire_at is not None:
            intent["expire_at"] = order_number(expire_at)
        for leg, value in (("sl", sl), ("tp", tp)):
            if value is not None:
                intent[leg] = bracket_value(value)
        rec.intents.append(intent)
        rec.receipts.append({"client_order_id": coid, "status": status, "reason": None})
        return OrderReceipt(coid, status, None)

    def cancel_order(self, client_order_id: Any) -> bool:
        """Ask to cancel an open order of this instance: True when the snapshot shows it open (the
        engine cancels it after the call; it may still fill first), False otherwise."""
        self._check()
        rec = self._rec
        if self._readonly or type(client_order_id) is not str or len(client_order_id) > 128:
            return False
        open_ids = {
            o.get("client_order_id")
            for o in _copy_list(self._snap.get("orders"))
            if o.get("status") in OPEN_ORDER_STATUSES or (o.get("status") == "shadow" and not o.get("filled"))
        }
        if client_order_id not in open_ids or len(rec.intents) >= rec.limits.max_orders_per_call:
            return False
        rec.intents.append({"kind": "cancel", "target": client_order_id})
        return True

    def close_position(self, tag: Any = None) -> OrderReceipt | None:
        """Close the whole position with a reduce-only market order (None when flat)."""
        self._check()
        position = self._snap.get("position")
        qty = position.get("qty") if type(position) is dict else None
        if type(qty) not in (int, float) or not qty:
            return None
        return self.place_order(
            "sell" if qty > 0 else "buy", abs(qty), tag="close" if tag is None else tag, reduce_only=True
        )

    def _reject(self, coid: str | None, reason: str) -> OrderReceipt:
        if len(self._rec.receipts) < self._rec.limits.max_orders_per_call * 2:
            self._rec.receipts.append({"client_order_id": coid, "status": "rejected", "reason": reason})
        return OrderReceipt(coid, "rejected", reason)


class SignalContext:
    """``ctx`` of should_enter/should_exit: market data, config, persistent state, logging."""

    __slots__ = ("_rec", "_snap", "_revoked", "_config", "_state", "_history", "_bars")

    def __init__(
        self,
        rec: CallRecord,
        snapshot: dict[str, Any],
        config: Any,
        state: dict[str, Any],
        history: tuple[float, ...],
        bars: tuple[Columns | None, Columns | None, int] | None = None,
    ) -> None:
        self._rec = rec
        self._snap = snapshot
        self._revoked = False
        self._config = config
        self._state = state
        self._history = history
        # (earlier bars, current columns, end index): a backtest's; else the snapshot's bars.
        self._bars = bars if bars is not None else (snapshot_bars(snapshot), None, 0)

    def _check(self) -> None:
        if self._revoked:
            raise ContextRevoked(
                "this context is no longer valid: a context only works during the call that received it"
            )

    def _revoke(self) -> None:
        self._revoked = True

    def __repr__(self) -> str:
        return "<signal context>"

    @property
    def config(self) -> Any:
        self._check()
        return self._config

    @property
    def state(self) -> dict[str, Any]:
        """Your persistent, JSON-serialisable state (mutate it in place)."""
        self._check()
        return self._state

    @property
    def market(self) -> str | None:
        self._check()
        return (self._snap.get("quote") or {}).get("market")

    @property
    def now(self) -> float | None:
        self._check()
        return self._snap.get("now")

    @property
    def mode(self) -> str:
        self._check()
        return "observe" if self._snap.get("mode") != "active" else "active"

    @property
    def history(self) -> PriceHistory:
        """Recent prices, oldest first (at most 1000), as a read-only sequence; call it as
        ``ctx.history(n, field="close")`` for the market's recent bars (see TickContext.history)."""
        self._check()
        return PriceHistory(self._history, self._bars_window)

    def _bars_window(self, n: int, field: str) -> list[float]:
        self._check()
        tail, cols, end = self._bars
        return history_window(tail, cols, end, n, field)

    def get_price(self, market: Any = None) -> float | None:
        self._check()
        quote = self._snap.get("quote") or {}
        if market is not None and type(market) is not str:
            return None  # exact type first: comparing a user object would run its __eq__ in trusted code
        if market is None or market == quote.get("market"):
            return _price(quote.get("price"))
        for q in self._snap.get("quotes") or []:
            if type(q) is dict and q.get("market") == market:
                return _price(q.get("price"))
        return None

    @property
    def plugin_signals(self) -> dict[str, Any]:
        """Sidecar plugin signals ``{plugin: {machine fields}}`` (a fresh copy: read-only data)."""
        self._check()
        return _copy_dict(self._snap.get("plugin_signals")) or {}

    def get_positions(self) -> list[Position]:
        self._check()
        return [make_position(p) for p in self._snap.get("positions") or []]

    def get_balance(self) -> Decimal:
        self._check()
        return _decimal(self._snap.get("balance"))

    def log(self, msg: Any, level: Any = "info") -> None:
        self._check()
        self._rec.log(level, msg)

    def notify(self, text: Any) -> None:
        """Send the tenant a notification (a `notify` log line; the engine delivers it, rate-limited)."""
        self._check()
        self._rec.log("notify", text)


def make_position(p: dict[str, Any]) -> Position:
    return Position(
        position_id=str(p.get("position_id", "")),
        market=p.get("market"),
        side=p.get("side", "long"),
        qty=p.get("qty"),
        entry_price=p.get("entry_price", p.get("avg_price")),
        current_price=p.get("current_price"),
        unrealized_pnl=p.get("unrealized_pnl"),
        opened_at=p.get("opened_at"),
    )
