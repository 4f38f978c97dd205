"""Backtests inside the host: the whole bar loop and a paper broker, one IPC round trip per chunk.

Fill model: market orders fill at the bar's close plus/minus ``slippage_bps``; limit orders rest
and fill at their limit price on a later bar whose low (buy) / high (sell) crosses it; every fill
pays ``fee_bps`` of its notional. Broker state survives between chunks (and is returned so the
client can restore it on a respawned host).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from sandbox import sdk
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
            "cash": self.cash, "starting_balance": self.starting_balance, "qty": self.qty,
            "avg_price": self.avg_price, "realized": self.realized, "fees": self.fees,
            "entry_ts": self.entry_ts, "pending": self.pending, "bars_total": self.bars_total,
            "orders_total": self.orders_total, "fills_total": self.fills_total,
            "peak_equity": self.peak_equity, "max_drawdown": self.max_drawdown, "seq": self.seq,
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
        self.trades.append({
            "entry_ts": self.entry_ts, "exit_ts": ts, "side": "long" if old > 0 else "short", "qty": closed,
            "entry_price": self.avg_price, "exit_price": price, "price": price, "pnl": pnl, "reason": reason or "exit",
        })
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

    def on_bar(self, ts: float, high: float, low: float) -> None:
        keep = []
        for order in self.pending:
            if order["side"] == "buy" and low <= order["price"]:
                self.fill("buy", order["qty"], order["price"], ts, order["tag"])
            elif order["side"] == "sell" and high >= order["price"]:
                self.fill("sell", order["qty"], order["price"], ts, order["tag"])
            else:
                keep.append(order)
        self.pending = keep

    def equity(self, close: float) -> float:
        return self.cash + self.qty * close


class BacktestContext:
    """``self.context`` during a backtest: the paper broker is the market."""

    __slots__ = ("_broker", "_rec", "_revoked", "_price", "_ts", "_high", "_low", "_market", "_bar", "_quota_bar", "_quota")

    def __init__(self, broker: PaperBroker, rec: CallRecord, market: str) -> None:
        self._broker = broker
        self._rec = rec
        self._revoked = False
        self._price = 0.0
        self._ts = 0.0
        self._market = market
        self._bar = 0
        self._quota_bar = -1
        self._quota = 0

    def _check(self) -> None:
        if self._revoked:
            raise ContextRevoked("this context is no longer valid: a context only works during the call that received it")

    def _revoke(self) -> None:
        self._revoked = True

    @property
    def mode(self) -> str:
        return "active"

    @property
    def now(self) -> float:
        return self._ts

    @property
    def market(self) -> str:
        return self._market

    def get_price(self) -> float:
        self._check()
        return self._price

    def get_orders(self) -> list[dict[str, Any]]:
        self._check()
        return [dict(o) for o in self._broker.pending]

    def get_position(self) -> dict[str, Any] | None:
        self._check()
        b = self._broker
        if b.qty == 0:
            return None
        return {"market": self._market, "qty": b.qty, "avg_price": b.avg_price,
                "unrealized_pnl": (self._price - b.avg_price) * b.qty, "realized_pnl": b.realized}

    def get_positions(self) -> list[dict[str, Any]]:
        pos = self.get_position()
        return [pos] if pos else []

    def get_balance(self) -> Decimal:
        self._check()
        return Decimal(repr(round(self._broker.cash, 8)))

    def log(self, msg: Any, level: Any = "info") -> None:
        self._check()
        self._rec.log(level, msg)

    def place_order(self, side: Any, qty: Any, type: Any = "market", price: Any = None, tag: Any = None) -> sdk.OrderReceipt:
        self._check()
        reason = order_problem(side, qty, type, price, tag)
        if reason is None:
            if self._quota_bar != self._bar:
                self._quota_bar = self._bar
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
        if type == "market":
            b.market(side, float(qty), self._price, self._ts, tag)
        else:
            b.pending.append({"client_order_id": coid, "side": side, "qty": float(qty), "price": float(price), "tag": tag})
        return sdk.OrderReceipt(coid, "submitted", None)


def _columns(bars: Any) -> dict[str, list[float]]:
    """Accept list-of-dicts or column dicts; validate numbers (trusted input, but be strict)."""
    if type(bars) is dict:
        cols = {k: list(bars[k]) for k in BAR_FIELDS if k in bars}
    elif type(bars) is list:
        cols = {k: [b.get(k) for b in bars] for k in BAR_FIELDS}
    else:
        raise SandboxError(ErrorCode.BAD_REQUEST, "bars must be a list of bar dicts")
    n = len(cols.get("close", []))
    close = cols.get("close") or []
    for k in BAR_FIELDS:
        col = cols.get(k)
        if col is None or len(col) != n or any(v is None for v in col):
            cols[k] = list(close) if k in ("open", "high", "low") else ([0.0] * n if k == "volume" else col or [])
    if len(cols["ts"]) != n:
        raise SandboxError(ErrorCode.BAD_REQUEST, "every bar needs ts and close")
    if not all(type(v) in (int, float) and math.isfinite(v) for v in close):
        raise SandboxError(ErrorCode.BAD_REQUEST, "bar close prices must be finite numbers")
    return cols


def run_backtest(inst: Instance, bars: Any, broker_params: dict[str, Any], broker_state: dict[str, Any] | None, market: str = "BT") -> dict[str, Any]:
    """Run one chunk of bars through ``inst``; return trades, equity points and progress counters."""
    cols = _columns(bars)
    if inst.backtest is None:
        inst.backtest = PaperBroker(broker_params, broker_state)
    broker: PaperBroker = inst.backtest
    broker.trades = []
    broker.fills = []
    rec = inst.rec = CallRecord(inst.limits, drop_logs=True)
    ts_c, o_c, h_c, l_c, c_c, v_c = (cols[k] for k in BAR_FIELDS)
    n = len(c_c)
    step = max(1, n // 500)
    equity: list[list[float]] = []
    if inst.style == "tick":
        _tick_loop(inst, broker, rec, market, ts_c, o_c, h_c, l_c, c_c, v_c, step, equity)
    else:
        _signal_loop(inst, broker, rec, market, ts_c, h_c, l_c, c_c, step, equity, broker_params)
    broker.bars_total += n
    text = inst._finish(rec)
    del text
    eq = broker.equity(c_c[-1]) if n else broker.cash
    return {
        "trades": broker.trades,
        "fills": broker.fills,
        "equity": equity,
        "logs": rec.logs,
        "logs_dropped": rec.logs_dropped,
        "progress": {"bars": n, "bars_total": broker.bars_total, "orders_total": broker.orders_total,
                     "fills_total": broker.fills_total},
        "summary": {"equity": eq, "cash": broker.cash, "position_qty": broker.qty, "realized_pnl": broker.realized,
                    "fees": broker.fees, "max_drawdown": broker.max_drawdown},
        "broker": broker.to_state(),
    }


def _mark(broker: PaperBroker, equity: list[list[float]], ts: float, close: float) -> None:
    eq = broker.cash + broker.qty * close
    if eq > broker.peak_equity:
        broker.peak_equity = eq
    elif broker.peak_equity > 0:
        dd = (broker.peak_equity - eq) / broker.peak_equity
        if dd > broker.max_drawdown:
            broker.max_drawdown = dd
    equity.append([ts, eq])


def _tick_loop(inst: Instance, broker: PaperBroker, rec: CallRecord, market: str, ts_c: list[float], o_c: list[float],
               h_c: list[float], l_c: list[float], c_c: list[float], v_c: list[float], step: int, equity: list[list[float]]) -> None:
    obj = inst.obj
    ctx = BacktestContext(broker, rec, market)
    object.__setattr__(obj, "_sb_context", ctx)
    on_tick = obj.on_tick
    new = tuple.__new__
    tick_cls = sdk.Tick
    n = len(c_c)

    def loop() -> None:
        for i in range(n):
            c = c_c[i]
            ts = ts_c[i]
            if broker.pending:
                broker.on_bar(ts, h_c[i], l_c[i])
            ctx._price = c
            ctx._ts = ts
            ctx._bar = i
            on_tick(new(tick_cls, (market, ts, c, c, c, v_c[i], o_c[i], h_c[i], l_c[i], c)))
            if i % step == 0:
                _mark(broker, equity, ts, c)

    try:
        inst._user_call(loop)
    finally:
        inst._revoke_obj_context()
    if n:
        _mark(broker, equity, ts_c[-1], c_c[-1])


def _signal_loop(inst: Instance, broker: PaperBroker, rec: CallRecord, market: str, ts_c: list[float], h_c: list[float],
                 l_c: list[float], c_c: list[float], step: int, equity: list[list[float]], params: dict[str, Any]) -> None:
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
            broker.on_bar(ts, h_c[i], l_c[i])
        snapshot = {"mode": "active", "now": ts, "quote": {"market": market, "price": c, "bid": c, "ask": c, "ts": ts},
                    "balance": repr(broker.cash)}
        ctx = SignalContext(rec, snapshot, inst.config, state, tuple(inst.history))
        try:
            if broker.qty != 0:
                pos = sdk.Position(position_id=f"bt-pos-{broker.seq}", market=market,
                                   side="long" if broker.qty > 0 else "short", qty=abs(broker.qty),
                                   entry_price=broker.avg_price, current_price=c,
                                   unrealized_pnl=(c - broker.avg_price) * broker.qty, opened_at=broker.entry_ts)
                sig = check_exit(inst._user_call(exit_, ctx, pos), pos)
                if sig is not None:
                    broker.market("sell" if broker.qty > 0 else "buy", abs(broker.qty), c, ts, sig["reason"] or "exit")
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
