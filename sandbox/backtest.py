"""Backtests inside the host: the whole bar loop and a paper broker, one IPC round trip per chunk.

Fill model — the paper broker's (``stratbox.trading.brokers.paper``) with a bar as the quote
price = bid = ask = close, as the replay feed publishes it: market orders fill at the bar's close
plus/minus ``slippage_bps``; a limit order marketable on arrival (buy: close <= limit, sell:
close >= limit) fills at once like a market order but never beyond its limit; otherwise it rests
and fills at exactly its limit price on a later bar whose close crosses it (checked before that
bar's ``on_tick``, as the engine marks resting orders to market on each new quote); every fill
pays ``fee_bps`` of its notional. Broker state survives between chunks (and is returned so the
client can restore it on a respawned host).
"""

from __future__ import annotations

import base64
import math
import time
from array import array
from bisect import bisect_right
from decimal import Decimal
from itertools import chain, islice, repeat
from typing import Any

from sandbox import sdk
from sandbox.barhistory import Columns, history_args, history_window
from sandbox.context import CallRecord, ContextRevoked, order_problem
from sandbox.errors import ErrorCode, SandboxError
from sandbox.runtime import Instance, check_entries, check_exit

BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")


class PaperBroker:
    """Single-market paper broker with signed position accounting."""

    def __init__(self, params: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.slippage = float(params.get("slippage_bps", 0.0)) / 1e4
        self.fee_rate = float(params.get("fee_bps", 0.0)) / 1e4
        s = state or {}
        self.cash = float(s.get("cash", params.get("starting_balance", 10000.0)))
        self.starting_balance = float(s.get("starting_balance", params.get("starting_balance", 10000.0)))
        self.qty = float(s.get("qty", 0.0))
        self.avg_price = float(s.get("avg_price", 0.0))
        self.realized = float(s.get("realized", 0.0))
        self.fees = float(s.get("fees", 0.0))
        self.entry_ts = s.get("entry_ts")
        self.pending: list[dict[str, Any]] = list(s.get("pending", []))
        self.bars_total = int(s.get("bars_total", 0))
        self.orders_total = int(s.get("orders_total", 0))
        self.fills_total = int(s.get("fills_total", 0))
        self.peak_equity = float(s.get("peak_equity", self.cash))
        self.max_drawdown = float(s.get("max_drawdown", 0.0))
        self.trades: list[dict[str, Any]] = []
        # Every fill of the current chunk as [ts, signed qty, price, fee]: the caller rebuilds exact
        # per-bar cash/position/equity from them (metrics use every bar; only fills cross the pipe).
        self.fills: list[list[float]] = []
        self.seq = int(s.get("seq", 0))

    def to_state(self) -> dict[str, Any]:
        return {
            "cash": self.cash,
            "starting_balance": self.starting_balance,
            "qty": self.qty,
            "avg_price": self.avg_price,
            "realized": self.realized,
            "fees": self.fees,
            "entry_ts": self.entry_ts,
            "pending": self.pending,
            "bars_total": self.bars_total,
            "orders_total": self.orders_total,
            "fills_total": self.fills_total,
            "peak_equity": self.peak_equity,
            "max_drawdown": self.max_drawdown,
            "seq": self.seq,
        }

    def fill(self, side: str, qty: float, price: float, ts: float, reason: str | None) -> None:
        signed = qty if side == "buy" else -qty
        fee = abs(qty * price) * self.fee_rate
        self.cash -= signed * price + fee
        self.fees += fee
        self.fills_total += 1
        self.fills.append([ts, signed, price, fee])
        old = self.qty
        if old == 0 or (old > 0) == (signed > 0):  # open or add
            total = old + signed
            self.avg_price = (self.avg_price * abs(old) + price * abs(signed)) / abs(total)
            if old == 0:
                self.entry_ts = ts
            self.qty = total
            return
        closed = min(abs(old), abs(signed))
        direction = 1.0 if old > 0 else -1.0
        pnl = (price - self.avg_price) * closed * direction - fee
        self.realized += pnl
        self.trades.append(
            {
                "entry_ts": self.entry_ts,
                "exit_ts": ts,
                "side": "long" if old > 0 else "short",
                "qty": closed,
                "entry_price": self.avg_price,
                "exit_price": price,
                "price": price,
                "pnl": pnl,
                "reason": reason or "exit",
            }
        )
        self.qty = old + signed
        if abs(self.qty) < 1e-12:
            self.qty = 0.0
            self.avg_price = 0.0
            self.entry_ts = None
        elif (self.qty > 0) != (old > 0):  # flipped: remainder opens a new position
            self.avg_price = price
            self.entry_ts = ts

    def market(self, side: str, qty: float, close: float, ts: float, tag: str | None) -> None:
        price = close * (1 + self.slippage) if side == "buy" else close * (1 - self.slippage)
        self.fill(side, qty, price, ts, tag)

    def limit(self, order: dict[str, Any], close: float, ts: float) -> None:
        """A new limit order: filled now when marketable (never beyond its limit), else resting."""
        side, limit_price = order["side"], order["price"]
        if side == "buy" and close <= limit_price:
            self.fill("buy", order["qty"], min(close * (1 + self.slippage), limit_price), ts, order["tag"])
        elif side == "sell" and close >= limit_price:
            self.fill("sell", order["qty"], max(close * (1 - self.slippage), limit_price), ts, order["tag"])
        else:
            self.pending.append(order)

    def on_bar(self, ts: float, close: float) -> None:
        keep = []
        for order in self.pending:
            if order["side"] == "buy" and close <= order["price"]:
                self.fill("buy", order["qty"], order["price"], ts, order["tag"])
            elif order["side"] == "sell" and close >= order["price"]:
                self.fill("sell", order["qty"], order["price"], ts, order["tag"])
            else:
                keep.append(order)
        # In place: the bar loop holds this very list to skip the broker on bars without orders.
        self.pending[:] = keep

    def equity(self, close: float) -> float:
        return self.cash + self.qty * close


class BacktestContext:
    """``self.context`` during a backtest: the paper broker is the market.

    The bar loop tells the context which bar is current with ONE slot write per bar (``_tick``,
    the immutable Tick handed to ``on_tick``): price, time and the per-bar order quota all derive
    from it, so the loop does not pay three writes per bar.
    """

    __slots__ = ("_broker", "_rec", "_revoked", "_tick", "_market", "_quota_tick", "_quota", "_bars")

    def __init__(
        self,
        broker: PaperBroker,
        rec: CallRecord,
        market: str,
        bars: tuple[Columns | None, Columns | None] = (None, None),
    ) -> None:
        self._bars = bars  # (the bars of earlier chunks, this chunk's columns) for history()
        self._broker = broker
        self._rec = rec
        self._revoked = False
        self._tick: tuple[Any, ...] = (market, 0.0, 0.0)
        self._market = market
        self._quota_tick: object = None
        self._quota = 0

    def _check(self) -> None:
        if self._revoked:
            raise ContextRevoked(
                "this context is no longer valid: a context only works during the call that received it"
            )

    def _revoke(self) -> None:
        self._revoked = True

    def __repr__(self) -> str:
        return "<backtest context>"

    @property
    def mode(self) -> str:
        return "active"

    @property
    def now(self) -> float:
        ts: float = self._tick[1]
        return ts

    @property
    def market(self) -> str:
        return self._market

    def get_price(self) -> float:
        self._check()
        price: float = self._tick[2]
        return price

    def history(self, n: Any, field: Any = "close") -> list[float]:
        """As the live context's: the last ``n`` bars' ``field``, oldest first, ending with this bar.

        The current bar is found by its ts (the trusted side sends strictly increasing ts): a
        bisection only when asked, so the bar loop pays nothing for it.
        """
        self._check()
        history_args(n, field)
        tail, cols = self._bars
        end = bisect_right(cols["ts"], self._tick[1]) if cols is not None else 0
        return history_window(tail, cols, end, n, field)

    def get_orders(self) -> list[dict[str, Any]]:
        self._check()
        return [dict(o) for o in self._broker.pending]

    def get_position(self) -> dict[str, Any] | None:
        self._check()
        b = self._broker
        if b.qty == 0:
            return None
        return {
            "market": self._market,
            "qty": b.qty,
            "avg_price": b.avg_price,
            "unrealized_pnl": (self._tick[2] - b.avg_price) * b.qty,
            "realized_pnl": b.realized,
        }

    def get_positions(self) -> list[dict[str, Any]]:
        pos = self.get_position()
        return [pos] if pos else []

    def get_balance(self) -> Decimal:
        self._check()
        return Decimal(repr(round(self._broker.cash, 8)))

    def log(self, msg: Any, level: Any = "info") -> None:
        self._check()
        self._rec.log(level, msg)

    def place_order(
        self, side: Any, qty: Any, type: Any = "market", price: Any = None, tag: Any = None
    ) -> sdk.OrderReceipt:
        self._check()
        reason = order_problem(side, qty, type, price, tag)
        if reason is None:
            tick = self._tick
            if self._quota_tick is not tick:  # first order on this bar: a fresh quota
                self._quota_tick = tick
                self._quota = 0
            if self._quota >= self._rec.limits.max_orders_per_call:
                reason = "ORDER_QUOTA_EXCEEDED"
        if reason is not None:
            return sdk.OrderReceipt(None, "rejected", reason)
        self._quota += 1
        b = self._broker
        b.seq += 1
        b.orders_total += 1
        coid = f"bt-{b.seq}"
        tick = self._tick
        if type == "market":
            b.market(side, float(qty), tick[2], tick[1], tag)
        else:
            b.limit(
                {"client_order_id": coid, "side": side, "qty": float(qty), "price": float(price), "tag": tag},
                tick[2],
                tick[1],
            )
        return sdk.OrderReceipt(coid, "submitted", None)


def _float_column(raw: Any, what: str) -> list[Any]:
    """A column as a list: packed native float64 bytes (what the client sends: no per-value
    pickling, and every value is a float by construction) or a list (direct, trusted callers)."""
    if type(raw) is bytes or type(raw) is bytearray:
        if len(raw) % 8:
            raise SandboxError(ErrorCode.BAD_REQUEST, f"bar column {what} is not packed float64")
        arr = array("d")
        arr.frombytes(raw)
        return arr.tolist()
    if type(raw) is not list and type(raw) is not tuple:
        raise SandboxError(ErrorCode.BAD_REQUEST, f"bar column {what} must be a list of numbers")
    return list(raw)


_NUM_TYPES = frozenset({int, float})


def _columns(bars: Any) -> dict[str, list[float]]:
    """Accept column dicts (packed float64 bytes or lists) or a list of bar dicts; validate."""
    if type(bars) is dict:
        raw = {k: bars[k] for k in BAR_FIELDS if k in bars}
    elif type(bars) is list:
        raw = {k: [b.get(k) if type(b) is dict else None for b in bars] for k in BAR_FIELDS}
    else:
        raise SandboxError(ErrorCode.BAD_REQUEST, "bars must be a list of bar dicts")
    # A column with gaps counts as missing (open/high/low fall back to the close, volume to 0).
    raw = {k: v for k, v in raw.items() if v is not None and (type(v) not in (list, tuple) or None not in v)}
    if "close" not in raw or "ts" not in raw:
        raise SandboxError(ErrorCode.BAD_REQUEST, "every bar needs ts and close")
    cols = {k: _float_column(v, k) for k, v in raw.items()}
    close = cols["close"]
    n = len(close)
    if len(cols["ts"]) != n:
        raise SandboxError(ErrorCode.BAD_REQUEST, "every bar needs ts and close")
    if not set(map(type, close)) <= _NUM_TYPES or not all(map(math.isfinite, close)):
        raise SandboxError(ErrorCode.BAD_REQUEST, "bar close prices must be finite numbers")
    for k in ("open", "high", "low"):  # missing or ragged columns: the close stands in
        if len(cols.get(k, ())) != n:
            cols[k] = close
    if len(cols.get("volume", ())) != n:
        cols["volume"] = [0.0] * n
    return cols


def run_backtest(
    inst: Instance,
    bars: Any,
    broker_params: dict[str, Any],
    broker_state: dict[str, Any] | None,
    market: str = "BT",
    packed: bool = False,
    history_tail: Any = None,
) -> dict[str, Any]:
    """Run one chunk of bars through ``inst``; return trades, equity points and progress counters.

    ``packed``: fills and trades as base64 float64 arrays (``fills_packed``: ts, signed qty,
    price, fee per fill; ``trades_packed``: entry_ts, exit_ts, direction +1/-1, qty, entry_price,
    exit_price, pnl per trade, with ``trade_reasons`` alongside) and no sampled equity list: the
    reply stays strict JSON, but the tens of thousands of numbers in it are not each printed by
    ``repr`` here and parsed again by the client.
    """
    t0 = time.perf_counter()
    cols = _columns(bars)
    if inst.backtest is None:
        inst.backtest = PaperBroker(broker_params, broker_state)
    broker: PaperBroker = inst.backtest
    broker.trades = []
    broker.fills = []
    rec = inst.rec = CallRecord(inst.limits, drop_logs=True)
    ts_c, o_c, h_c, l_c, c_c, v_c = (cols[k] for k in BAR_FIELDS)
    bars = (_tail(history_tail), cols)
    t1 = time.perf_counter()
    n = len(c_c)
    step = max(1, n // 500)
    equity: list[list[float]] = []
    if inst.style == "tick":
        _tick_loop(inst, broker, rec, market, ts_c, o_c, h_c, l_c, c_c, v_c, step, equity, bars)
    else:
        _signal_loop(inst, broker, rec, market, ts_c, h_c, l_c, c_c, step, equity, broker_params, bars)
    t2 = time.perf_counter()
    broker.bars_total += n
    text = inst._finish(rec)
    del text
    eq = broker.equity(c_c[-1]) if n else broker.cash
    out: dict[str, Any]
    if packed:
        trades = broker.trades
        out = {
            "fills_packed": _b64(chain.from_iterable(broker.fills)),
            "trades_packed": _b64(
                chain.from_iterable(
                    (
                        t["entry_ts"],
                        t["exit_ts"],
                        1.0 if t["side"] == "long" else -1.0,
                        t["qty"],
                        t["entry_price"],
                        t["exit_price"],
                        t["pnl"],
                    )
                    for t in trades
                )
            ),
            "trade_reasons": [t["reason"] for t in trades],
        }
    else:
        out = {"trades": broker.trades, "fills": broker.fills, "equity": equity}
    return {
        **out,
        # Informational (reported by the host, so never trusted for anything but display).
        "timings": {"columns_s": t1 - t0, "loop_s": t2 - t1, "pack_s": time.perf_counter() - t2},
        "logs": rec.logs,
        "logs_dropped": rec.logs_dropped,
        "progress": {
            "bars": n,
            "bars_total": broker.bars_total,
            "orders_total": broker.orders_total,
            "fills_total": broker.fills_total,
        },
        "summary": {
            "equity": eq,
            "cash": broker.cash,
            "position_qty": broker.qty,
            "realized_pnl": broker.realized,
            "fees": broker.fees,
            "max_drawdown": broker.max_drawdown,
        },
        "broker": broker.to_state(),
    }


def _tail(raw: Any) -> Columns | None:
    """The bars of earlier chunks (packed columns from the client), for ``history``."""
    if type(raw) is not dict:
        return None
    return {k: _float_column(raw[k], k) for k in BAR_FIELDS if k in raw}


def _b64(values: Any) -> str:
    """Floats packed as native float64 and base64-encoded (JSON-safe, no per-number text)."""
    return base64.b64encode(array("d", values).tobytes()).decode("ascii")


def _mark(broker: PaperBroker, equity: list[list[float]], ts: float, close: float) -> None:
    eq = broker.cash + broker.qty * close
    if eq > broker.peak_equity:
        broker.peak_equity = eq
    elif broker.peak_equity > 0:
        dd = (broker.peak_equity - eq) / broker.peak_equity
        if dd > broker.max_drawdown:
            broker.max_drawdown = dd
    equity.append([ts, eq])


def _tick_loop(
    inst: Instance,
    broker: PaperBroker,
    rec: CallRecord,
    market: str,
    ts_c: list[float],
    o_c: list[float],
    h_c: list[float],
    l_c: list[float],
    c_c: list[float],
    v_c: list[float],
    step: int,
    equity: list[list[float]],
    bars: tuple[Columns | None, Columns | None] = (None, None),
) -> None:
    """The per-bar loop: what runs a million times, so every line here is counted.

    Ticks are built by ``map`` in C (``tuple.__new__(Tick, row)`` over zipped columns): each bar
    gets its own immutable Tick, so a strategy that keeps a reference sees that bar forever. The
    broker is only entered on bars with resting orders (``pending`` is the broker's own list,
    updated in place); equity is sampled once per block of ``step`` bars, not tested per bar.
    """
    obj = inst.obj
    ctx = BacktestContext(broker, rec, market, bars)
    object.__setattr__(obj, "_sb_context", ctx)
    on_tick = obj.on_tick
    pending = broker.pending
    on_bar = broker.on_bar
    n = len(c_c)
    ticks = map(
        tuple.__new__, repeat(sdk.Tick), zip(repeat(market), ts_c, c_c, c_c, c_c, v_c, o_c, h_c, l_c, c_c)
    )

    def loop() -> None:
        for _block in range(0, n, step):
            tick: Any = None
            for tick in islice(ticks, step):
                if pending:
                    on_bar(tick[1], tick[9])
                ctx._tick = tick
                on_tick(tick)
            _mark(broker, equity, tick[1], tick[9])

    try:
        inst._user_call(loop)
    finally:
        inst._revoke_obj_context()


def _signal_loop(
    inst: Instance,
    broker: PaperBroker,
    rec: CallRecord,
    market: str,
    ts_c: list[float],
    h_c: list[float],
    l_c: list[float],
    c_c: list[float],
    step: int,
    equity: list[list[float]],
    params: dict[str, Any],
    bars: tuple[Columns | None, Columns | None] = (None, None),
) -> None:
    from sandbox.context import SignalContext

    qty = float(params.get("qty", 1.0))
    state = inst._get_state()
    assert inst.entry is not None and inst.exit is not None
    entry, exit_ = inst.entry, inst.exit
    for i in range(len(c_c)):
        c = c_c[i]
        ts = ts_c[i]
        inst.history.append(c)
        if broker.pending:
            broker.on_bar(ts, c)
        snapshot = {
            "mode": "active",
            "now": ts,
            "quote": {"market": market, "price": c, "bid": c, "ask": c, "ts": ts},
            "balance": repr(broker.cash),
        }
        ctx = SignalContext(rec, snapshot, inst.config, state, tuple(inst.history), (bars[0], bars[1], i + 1))
        try:
            if broker.qty != 0:
                pos = sdk.Position(
                    position_id=f"bt-pos-{broker.seq}",
                    market=market,
                    side="long" if broker.qty > 0 else "short",
                    qty=abs(broker.qty),
                    entry_price=broker.avg_price,
                    current_price=c,
                    unrealized_pnl=(c - broker.avg_price) * broker.qty,
                    opened_at=broker.entry_ts,
                )
                sig = check_exit(inst._user_call(exit_, ctx, pos), pos)
                if sig is not None:
                    broker.market(
                        "sell" if broker.qty > 0 else "buy", abs(broker.qty), c, ts, sig["reason"] or "exit"
                    )
            if broker.qty == 0:
                entries = check_entries(inst._user_call(entry, ctx), inst.limits.max_signals_per_call)
                if entries:  # single-market backtest: the first entry signal opens the position
                    e = entries[0]
                    broker.seq += 1
                    broker.orders_total += 1
                    broker.market("buy" if e["side"] == "long" else "sell", qty, c, ts, e["reason"])
        finally:
            ctx._revoke()
        if i % step == 0:
            _mark(broker, equity, ts, c)
    if c_c:
        _mark(broker, equity, ts_c[-1], c_c[-1])
