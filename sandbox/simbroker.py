"""The backtester's broker: one market, the order model and ``sandbox.fillmodel`` in floats.

Orders are plain dicts (their state crosses chunk boundaries as JSON): client_order_id, side,
type, qty, filled_qty, limit, stop, triggered, tif, expire_at, reduce_only, oco (the bracket
parent's id for a stop-loss / take-profit leg), sl / tp (legs to attach once it fills), tag,
status. Open orders live in ``pending`` — the bar loop only calls ``on_bar`` while it is not
empty, so a bar with nothing resting costs one truth test.

Rules (the paper broker follows the same, see README "Orders and fills"):
- a new order passes the instance's capital gate and the margin check (``fillmodel``) on arrival
  when it adds risk; a denial is recorded with its code (``denials``) and the order is rejected;
- at ``signal_close`` a new order is checked against the signal bar's close at once; at
  ``next_open`` it rests and is first checked against the next bar;
- IOC / FOK orders never rest: whatever did not fill at their first check is cancelled (FOK: all
  or nothing); DAY orders expire at the next UTC midnight; ``expire_at`` (unix seconds) likewise;
- partial fills: ``max_volume_fraction`` of a bar's volume caps what one order fills on it (on
  arrival: the signal bar's volume), by ``fillmodel.capped_qty`` as in paper trading;
- reduce-only orders never open or grow a position (their quantity is cut to the position's) and
  are cancelled when the position is gone; bracket legs (``sl`` / ``tp``) are reduce-only,
  attached when their parent fills, one-cancels-other, and die with their position;
- the margin check runs again at fill time: a resting order the account can no longer carry is
  rejected with ``INSUFFICIENT_BALANCE`` instead of filling.
"""

from __future__ import annotations

from typing import Any

from sandbox import fillmodel as fm
from sandbox.sessions import Windows

SETTLEMENT = "settlement"  # the tag (and trade reason) of a binary market's settlement fill
CLOSED_KEPT = 50  # closed orders ``get_orders`` still shows (with their final status)
DENIALS_KEPT = 1000


class SimBroker:
    """Single-market simulated broker with signed position accounting."""

    def __init__(self, params: dict[str, Any], state: dict[str, Any] | None = None) -> None:
        self.slippage = float(params.get("slippage_bps", 0.0)) / 1e4
        self.fee_rate = float(params.get("fee_bps", 0.0)) / 1e4
        self.fee_fixed = float(params.get("fee_fixed", 0.0))
        self.leverage = float(params.get("leverage", 1.0))
        self.allow_short = bool(params.get("allow_short", True))
        self.next_open = params.get("fill_timing", "signal_close") == "next_open"
        self.volume_fraction = params.get("max_volume_fraction")
        self.limits: dict[str, Any] | None = params.get("limits")
        self.kind = params.get("kind", "spot")
        self.tick_size = float(params.get("tick_size") or 0.0)
        # The market's trading hours for the current chunk (None: always open, costs nothing).
        self.sessions: Windows | None = Windows.from_params(params)
        s = state or {}
        self.cash = float(s.get("cash", params.get("starting_balance", 10000.0)))
        self.starting_balance = float(s.get("starting_balance", params.get("starting_balance", 10000.0)))
        self.qty = float(s.get("qty", 0.0))
        self.avg_price = float(s.get("avg_price", 0.0))
        self.realized = float(s.get("realized", 0.0))
        self.fees = float(s.get("fees", 0.0))
        self.entry_ts = s.get("entry_ts")
        self.pending: list[dict[str, Any]] = list(s.get("pending", []))
        self.closed: list[dict[str, Any]] = list(s.get("closed", []))
        self.bars_total = int(s.get("bars_total", 0))
        self.orders_total = int(s.get("orders_total", 0))
        self.fills_total = int(s.get("fills_total", 0))
        self.peak_equity = float(s.get("peak_equity", self.cash))
        self.max_drawdown = float(s.get("max_drawdown", 0.0))
        self.day = s.get("day")
        self.realized_day_start = float(s.get("realized_day_start", 0.0))
        self.denial_counts: dict[str, int] = dict(s.get("denial_counts", {}))
        self.seq = int(s.get("seq", 0))
        self.last_price = float(s.get("last_price", 0.0))
        self.trades: list[dict[str, Any]] = []
        # Every fill of the current chunk as [ts, signed qty, price, fee]: the caller rebuilds exact
        # per-bar cash/position/equity from them (metrics use every bar; only fills cross the pipe).
        self.fills: list[list[float]] = []
        self.denials: list[dict[str, Any]] = []

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
            "closed": self.closed,
            "bars_total": self.bars_total,
            "orders_total": self.orders_total,
            "fills_total": self.fills_total,
            "peak_equity": self.peak_equity,
            "max_drawdown": self.max_drawdown,
            "day": self.day,
            "realized_day_start": self.realized_day_start,
            "denial_counts": self.denial_counts,
            "seq": self.seq,
            "last_price": self.last_price,
        }

    # --- accounting -----------------------------------------------------------------------

    def fill(self, side: str, qty: float, price: float, ts: float, reason: str | None) -> None:
        signed = qty if side == "buy" else -qty
        fee = fm.fee_for(qty * price, self.fee_rate, self.fee_fixed)
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
        if self.qty == 0 or (self.qty > 0) != (old > 0):
            self._position_gone(ts)

    def equity(self, close: float) -> float:
        return self.cash + self.qty * close

    def _position_gone(self, ts: float) -> None:
        """Reduce-only orders (bracket legs among them) die with their position."""
        for order in [o for o in self.pending if o["reduce_only"]]:
            self._close(order, "cancelled", ts, "position closed")

    # --- orders ---------------------------------------------------------------------------

    def new_order(
        self,
        *,
        side: str,
        qty: float,
        type: str = "market",
        limit: float | None = None,
        stop: float | None = None,
        tif: str = "gtc",
        expire_at: float | None = None,
        reduce_only: bool = False,
        sl: Any = None,
        tp: Any = None,
        tag: str | None = None,
        ts: float,
        price: float,
        oco: str | None = None,
        volume: float | None = None,
    ) -> dict[str, Any]:
        """Accept (or deny) a new order at bar time ``ts`` whose signal price is ``price`` (on a bar
        of ``volume``, which caps a fill on arrival when ``max_volume_fraction`` is set)."""
        self.seq += 1
        self.orders_total += 1
        if tif == "day" and expire_at is None:
            close = self.sessions.close_of(ts) if self.sessions is not None else None
            expire_at = close if close is not None else fm.day_end(ts)
        order: dict[str, Any] = {
            "client_order_id": f"bt-{self.seq}",
            "side": side,
            "type": type,
            "qty": qty,
            "filled_qty": 0.0,
            "limit": limit,
            "stop": stop,
            "triggered": False,
            "tif": tif,
            "expire_at": expire_at,
            "reduce_only": reduce_only,
            "oco": oco,
            "sl": sl,
            "tp": tp,
            "tag": tag,
            "status": "accepted",
            "ts": ts,
            "fill_price": None,
            "reason": None,
        }
        problem = self._admission(order, price)
        if problem is not None:
            self._deny(order, problem[0], problem[1], ts)
            return order
        if reduce_only and self._reduce_qty(order) <= 0:
            self._close(order, "cancelled", ts, "reduce-only: no position to reduce")
            return order
        self.pending.append(order)
        if not self.next_open:
            fill_price, triggered = fm.on_arrival(side, type, limit, stop, price, self.slippage)
            order["triggered"] = triggered
            if fill_price is not None:
                self._execute(order, fill_price, ts, volume)
            if order["status"] in ("accepted", "partially_filled") and tif in ("ioc", "fok"):
                self._close(order, "cancelled", ts, f"{tif}: not filled at once")
        return order

    def _admission(self, order: dict[str, Any], price: float) -> tuple[str, str] | None:
        """Binary price rules, then the instance's gate and the margin check for orders that add
        risk, valued at the worst price the order can fill at (its limit, else the signal price).
        Outside the market's trading hours every order is denied, as a venue refuses it."""
        if self.sessions is not None:
            closed = self.sessions.closed_problem(order["ts"])
            if closed is not None:
                return closed
        if self.kind == "binary":
            for key in ("limit", "stop"):
                if order[key] is not None:
                    code = fm.binary_price_problem(order[key], self.tick_size)
                    if code:
                        return code, f"{key} {order[key]} is not a 0..1 price on tick {self.tick_size}"
        signed = order["qty"] if order["side"] == "buy" else -order["qty"]
        if order["reduce_only"] or (
            self.qty != 0 and (self.qty > 0) != (signed > 0) and abs(signed) <= abs(self.qty)
        ):
            return None
        est = fm.price_estimate(
            order["side"], order["type"], order["limit"], order["stop"], price, self.slippage
        )
        notional = order["qty"] * est
        held = abs(self.qty) * self.avg_price
        gate = fm.gate_problem(
            notional,
            self.limits,
            position_cost=held,
            deployed=held,
            open_positions=1 if self.qty else 0,
            has_position=self.qty != 0,
            daily_pnl=self._daily_pnl(order["ts"], price),
        )
        if gate is not None:
            return gate
        return self._margin(signed, est)

    def _margin(self, signed: float, price: float) -> tuple[str, str] | None:
        fee = fm.fee_for(abs(signed) * price, self.fee_rate, self.fee_fixed)
        code = fm.margin_problem(self.qty, signed, price, fee, self.cash, self.leverage, self.allow_short)
        if code == "SHORT_NOT_ALLOWED":
            return code, "the account does not allow short positions"
        if code is not None:
            return code, f"{abs(signed):g} at {price:.8g} needs more than {self.leverage:g}x the equity"
        return None

    def _daily_pnl(self, ts: float, price: float) -> float:
        day = int(ts // fm.DAY_SECONDS)
        if day != self.day:
            self.day = day
            self.realized_day_start = self.realized
        return self.realized - self.realized_day_start + (price - self.avg_price) * self.qty

    def _deny(self, order: dict[str, Any], code: str, message: str, ts: float) -> None:
        order["status"] = "rejected"
        order["reason"] = code
        self.denial_counts[code] = self.denial_counts.get(code, 0) + 1
        if len(self.denials) < DENIALS_KEPT:
            self.denials.append(
                {"ts": ts, "client_order_id": order["client_order_id"], "code": code, "message": message}
            )
        self._remember(order)

    def _remember(self, order: dict[str, Any]) -> None:
        self.closed.append(order)
        if len(self.closed) > CLOSED_KEPT:
            del self.closed[: len(self.closed) - CLOSED_KEPT]

    def _close(self, order: dict[str, Any], status: str, ts: float, reason: str | None) -> None:
        order["status"] = status
        order["reason"] = reason
        if order in self.pending:
            self.pending.remove(order)
        self._remember(order)

    def _reduce_qty(self, order: dict[str, Any]) -> float:
        """What a reduce-only order may still fill: at most the position, and only against it."""
        remaining: float = order["qty"] - order["filled_qty"]
        if self.qty == 0 or (self.qty > 0) == (order["side"] == "buy"):
            return 0.0
        return min(remaining, abs(self.qty))

    def cancel(self, client_order_id: str, ts: float) -> bool:
        for order in self.pending:
            if order["client_order_id"] == client_order_id:
                self._close(order, "cancelled", ts, "cancelled by the strategy")
                return True
        return False

    def _execute(self, order: dict[str, Any], price: float, ts: float, volume: float | None) -> None:
        """Fill what the order can fill at ``price`` (volume cap, reduce-only, margin), then its
        bracket legs and OCO sibling follow."""
        qty = order["qty"] - order["filled_qty"]
        if order["reduce_only"]:
            qty = self._reduce_qty(order)
            if qty <= 0:
                self._close(order, "cancelled", ts, "reduce-only: no position to reduce")
                return
        if volume is not None and self.volume_fraction is not None:
            qty = fm.capped_qty(qty, fm.available_size(volume, float(self.volume_fraction)), order["tif"])
            if qty <= 0:
                return  # nothing on offer (FOK: not all of it): it rests, or the caller cancels it
        signed = qty if order["side"] == "buy" else -qty
        problem = self._margin(signed, price)
        if problem is not None:
            if order in self.pending:
                self.pending.remove(order)
            self._deny(order, problem[0], problem[1], ts)
            return
        self.fill(order["side"], qty, price, ts, order["tag"])
        order["filled_qty"] += qty
        order["fill_price"] = price
        done = order["filled_qty"] >= order["qty"] - 1e-12
        if done:
            self._close(order, "filled", ts, None)
        else:
            order["status"] = "partially_filled"
        if order["sl"] is not None or order["tp"] is not None:
            self._attach_legs(order, qty, price, ts)
        if order["oco"] is not None:
            self._oco_filled(order, qty, ts)

    def _attach_legs(self, parent: dict[str, Any], qty: float, price: float, ts: float) -> None:
        """Create (or grow, on a further partial fill) the parent's stop-loss and take-profit."""
        exit_side = "sell" if parent["side"] == "buy" else "buy"
        legs = {o.get("leg"): o for o in self.pending if o["oco"] == parent["client_order_id"]}
        for leg, kind in (("sl", "stop"), ("tp", "limit")):
            level = fm.bracket_level(parent[leg], price, parent["side"], leg)
            if level is None:
                continue
            if leg in legs:
                legs[leg]["qty"] += qty
                continue
            self.seq += 1
            self.orders_total += 1
            self.pending.append(
                {
                    "client_order_id": f"bt-{self.seq}",
                    "side": exit_side,
                    "type": kind,
                    "qty": qty,
                    "filled_qty": 0.0,
                    "limit": level if kind == "limit" else None,
                    "stop": level if kind == "stop" else None,
                    "triggered": False,
                    "tif": "gtc",
                    "expire_at": None,
                    "reduce_only": True,
                    "oco": parent["client_order_id"],
                    "leg": leg,
                    "sl": None,
                    "tp": None,
                    "tag": leg,
                    "status": "accepted",
                    "ts": ts,
                    "fill_price": None,
                    "reason": None,
                }
            )

    def _oco_filled(self, order: dict[str, Any], qty: float, ts: float) -> None:
        """One bracket leg filled: the other leg shrinks by as much, and goes once it is done."""
        for other in [o for o in self.pending if o["oco"] == order["oco"] and o is not order]:
            if order["status"] == "filled":
                self._close(other, "cancelled", ts, "OCO: the other leg filled")
            else:
                other["qty"] -= qty

    # --- the bar --------------------------------------------------------------------------

    def on_bar(self, ts: float, o: float, h: float, lo: float, c: float, v: float | None = None) -> None:
        """Check every resting order against a new bar (before the strategy sees it): expiry first,
        then stops before limits (the conservative order of events). Outside the market's trading
        hours nothing fills (orders still expire; IOC / FOK ones are cancelled)."""
        closed = self.sessions is not None and self.sessions.close_of(ts) is None
        orders = sorted(self.pending, key=_stops_first)
        for order in orders:
            if order not in self.pending:  # cancelled by an OCO sibling or a closed position
                continue
            if order["expire_at"] is not None and ts >= order["expire_at"]:
                self._close(order, "expired", ts, "expired")
                continue
            if closed:
                if order["tif"] in ("ioc", "fok"):
                    self._close(order, "cancelled", ts, f"{order['tif']}: not filled at once")
                continue
            price, triggered = fm.on_bar(
                order["side"],
                order["type"],
                order["limit"],
                order["stop"],
                order["triggered"],
                o,
                h,
                lo,
                self.slippage,
            )
            order["triggered"] = triggered
            if price is not None:
                self._execute(order, price, ts, v)
            if order in self.pending and order["tif"] in ("ioc", "fok"):
                self._close(order, "cancelled", ts, f"{order['tif']}: not filled at once")

    def close_position(
        self, ts: float, price: float, tag: str | None, volume: float | None = None
    ) -> dict[str, Any] | None:
        """A reduce-only market order for the whole position (None when flat)."""
        if self.qty == 0:
            return None
        side = "sell" if self.qty > 0 else "buy"
        return self.new_order(
            side=side,
            qty=abs(self.qty),
            reduce_only=True,
            tag=tag or "close",
            ts=ts,
            price=price,
            volume=volume,
        )

    def settle(self, value: float, ts: float) -> None:
        """A binary market resolved at ``value`` (1 or 0): the position closes there, fee-free, and
        every open order is cancelled."""
        for order in list(self.pending):
            self._close(order, "cancelled", ts, "market resolved")
        if self.qty:
            fee_rate, fee_fixed = self.fee_rate, self.fee_fixed
            self.fee_rate = self.fee_fixed = 0.0
            try:
                self.fill("sell" if self.qty > 0 else "buy", abs(self.qty), value, ts, SETTLEMENT)
            finally:
                self.fee_rate, self.fee_fixed = fee_rate, fee_fixed

    def order_views(self) -> list[dict[str, Any]]:
        """Open orders and the most recent closed ones, as the strategy sees them."""
        return [_view(o) for o in self.pending] + [_view(o) for o in self.closed[-10:]]


def _stops_first(order: dict[str, Any]) -> int:
    return 0 if order["type"] in ("stop", "stop_limit", "market") else 1


_VIEW_KEYS = (
    "client_order_id",
    "side",
    "type",
    "qty",
    "filled_qty",
    "limit",
    "stop",
    "tif",
    "reduce_only",
    "tag",
    "status",
    "fill_price",
    "reason",
)


def _view(order: dict[str, Any]) -> dict[str, Any]:
    view = {k: order.get(k) for k in _VIEW_KEYS}
    view["price"] = order.get("limit")  # the name get_orders used before stops existed
    view["leg"] = order.get("leg")
    return view
