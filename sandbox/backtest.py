"""Backtests inside the host: the whole bar loop and a simulated broker, one IPC round trip per chunk.

Fill model — ``sandbox.fillmodel``, the one the paper broker (``stratbox.trading.brokers.paper``)
uses too, with the order model of ``sandbox.simbroker``: at ``signal_close`` (the default) a market
order fills at the signal bar's close plus/minus ``slippage_bps``; at ``next_open`` at the next
bar's open. Resting limits and stops are checked against each later bar's open/high/low before
that bar's ``on_tick`` (as the engine marks resting orders to market on each new quote); every
fill pays ``fee_bps`` of its notional plus ``fee_fixed``. Broker state survives between chunks
(and is returned so the client can restore it on a respawned host).
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

from sandbox import fillmodel as fm
from sandbox import sdk
from sandbox.barhistory import Columns, history_args, history_window
from sandbox.context import (
    CallRecord,
    ContextRevoked,
    SignalContext,
    bracket_value,
    order_number,
    order_options_problem,
    order_problem,
)
from sandbox.errors import ErrorCode, SandboxError
from sandbox.runtime import Instance, check_entries, check_exit
from sandbox.sessions import Windows
from sandbox.simbroker import SimBroker

BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")


PaperBroker = SimBroker  # the name the backtest broker had before the order model


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
        """Open orders and the latest closed ones, each with its live status."""
        self._check()
        return self._broker.order_views()

    def get_equity(self) -> float:
        """Cash plus the position marked at the current price."""
        self._check()
        return self._broker.equity(self._tick[2])

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
    ) -> sdk.OrderReceipt:
        self._check()
        reason = order_problem(side, qty, type, price, tag, stop_price) or order_options_problem(
            tif, reduce_only, sl, tp, expire_at
        )
        if reason is None:
            reason = self._take_quota()
        if reason is not None:
            return sdk.OrderReceipt(None, "rejected", reason)
        tick = self._tick
        order = self._broker.new_order(
            side=side,
            qty=float(qty),
            type=type,
            limit=order_number(price) if price is not None else None,
            stop=order_number(stop_price) if stop_price is not None else None,
            tif=tif,
            expire_at=order_number(expire_at) if expire_at is not None else None,
            reduce_only=reduce_only,
            sl=bracket_value(sl),
            tp=bracket_value(tp),
            tag=tag,
            ts=tick[1],
            price=tick[2],
            volume=tick[5] if len(tick) > 5 else None,
        )
        return _receipt(order)

    def _take_quota(self) -> str | None:
        tick = self._tick
        if self._quota_tick is not tick:  # first order on this bar: a fresh quota
            self._quota_tick = tick
            self._quota = 0
        if self._quota >= self._rec.limits.max_orders_per_call:
            return "ORDER_QUOTA_EXCEEDED"
        self._quota += 1
        return None

    def cancel_order(self, client_order_id: Any) -> bool:
        """Cancel an open order; False when no open order has that id (filled, gone or never)."""
        self._check()
        if type(client_order_id) is not str:
            return False
        return self._broker.cancel(client_order_id, self._tick[1])

    def close_position(self, tag: Any = None) -> sdk.OrderReceipt | None:
        """Close the whole position with a reduce-only market order (None when flat)."""
        self._check()
        if tag is not None and (type(tag) is not str or len(tag) > 64):
            return sdk.OrderReceipt(None, "rejected", "INVALID_TAG")
        reason = self._take_quota()
        if reason is not None:
            return sdk.OrderReceipt(None, "rejected", reason)
        tick = self._tick
        order = self._broker.close_position(tick[1], tick[2], tag, tick[5] if len(tick) > 5 else None)
        return _receipt(order) if order is not None else None


def _receipt(order: dict[str, Any]) -> sdk.OrderReceipt:
    if order["status"] == "rejected":
        return sdk.OrderReceipt(order["client_order_id"], "rejected", order["reason"])
    return sdk.OrderReceipt(order["client_order_id"], "submitted", None)


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
    broker.sessions = Windows.from_params(broker_params)  # this chunk's trading hours (or None)
    broker.trades = []
    broker.fills = []
    broker.denials = []
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
        _signal_loop(
            inst, broker, rec, market, ts_c, o_c, h_c, l_c, c_c, v_c, step, equity, broker_params, bars
        )
    settle = broker_params.get("settle")
    if type(settle) is dict and n:
        # A binary market resolved at or after this chunk's last bar: its settlement is booked on
        # that bar (a fill must fall on a bar), as paper's `market_resolve` books it.
        broker.settle(float(settle["value"]), ts_c[-1])
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
        # Orders the risk gate or the margin check denied in this chunk, with their codes.
        "denials": broker.denials,
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
                    on_bar(tick[1], tick[6], tick[7], tick[8], tick[9], tick[5])
                ctx._tick = tick
                on_tick(tick)
            _mark(broker, equity, tick[1], tick[9])

    try:
        inst._user_call(loop)
    finally:
        inst._revoke_obj_context()


def _signal_size(params: dict[str, Any], confidence: Any, price: float, side: str = "buy") -> float:
    """An entry's quantity: the instance's sizing (``fillmodel.entry_notional`` at the price the
    gate values a market order at, ``fillmodel.price_estimate``, through ``fillmodel.entry_qty``, as
    the engine sizes live entries) when the backtest reuses an instance, else the fixed ``qty``
    parameter. ``price``: the signal bar's close (its bid and ask)."""
    sizing = params.get("sizing")
    if not sizing or "total_capital" not in sizing:
        return float(params.get("qty", 1.0))
    p = float(confidence) if type(confidence) in (int, float) and math.isfinite(confidence) else 0.0
    pct = sizing.get("percent_capital", 10)
    notional = fm.entry_notional(
        sizing.get("method", "fixed"),
        float(sizing["capital_per_trade"]),
        float(sizing["total_capital"]),
        min(max(p, 0.0), 1.0),
        float(pct) if type(pct) in (int, float) and math.isfinite(pct) and pct > 0 else 10.0,
    )
    notional = math.floor(notional * 100 + 1e-9) / 100
    slip = float(params.get("slippage_bps", 0.0)) / 1e4
    est = fm.price_estimate(side, "market", None, None, price, slip)
    qty: float = fm.entry_qty(notional, est, float(sizing.get("lot_size") or 0))
    return round(qty, 8)


def _signal_loop(
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
    params: dict[str, Any],
    bars: tuple[Columns | None, Columns | None] = (None, None),
) -> None:
    state = inst._get_state()
    assert inst.entry is not None and inst.exit is not None
    entry, exit_ = inst.entry, inst.exit
    for i in range(len(c_c)):
        c = c_c[i]
        ts = ts_c[i]
        inst.history.append(c)
        if broker.pending:
            broker.on_bar(ts, o_c[i], h_c[i], l_c[i], c, v_c[i])
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
                    broker.close_position(ts, c, sig["reason"] or "exit", v_c[i])
            if broker.qty == 0 and not _entry_resting(broker):
                entries = check_entries(inst._user_call(entry, ctx), inst.limits.max_signals_per_call)
                if entries:  # single-market backtest: the first entry signal opens the position
                    e = entries[0]
                    side = "buy" if e["side"] == "long" else "sell"
                    qty = _signal_size(params, e.get("confidence", 1.0), c, side)
                    if qty > 0:
                        broker.new_order(
                            side=side,
                            qty=qty,
                            tag=e["reason"],
                            ts=ts,
                            price=c,
                            volume=v_c[i],
                            sl=e.get("sl"),
                            tp=e.get("tp"),
                        )
        finally:
            ctx._revoke()
        if i % step == 0:
            _mark(broker, equity, ts, c)
    if c_c:
        _mark(broker, equity, ts_c[-1], c_c[-1])


def _entry_resting(broker: PaperBroker) -> bool:
    """An entry order still waits for its fill (``next_open``): no second entry meanwhile."""
    return any(not o["reduce_only"] for o in broker.pending)
