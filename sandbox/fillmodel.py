"""The one fill model: when and at what price an order fills on a bar, what it costs, and whether
the account can carry it. Pure arithmetic, shared by the backtester (floats, inside the host) and
the paper broker (``stratbox.trading.brokers.paper``, Decimals): every function works on whatever
number type it is given, so there is no second implementation to drift.

A *bar* is ``(open, high, low, close)``. The paper broker turns a quote into a bar: the replayed
bar's open/high/low with the quote side as the close, or ``(p, p, p, p)`` for a bare quote (a buy
sees the ask, a sell the bid).

Order types and how a resting order is checked against a new bar, in the conservative order of
events (the open first, then the worst intrabar path for the account):

- ``market``: fills at the open of the bar it is checked on (``next_open``), or at the signal
  bar's close on arrival (``signal_close``), slipped by ``slippage_bps`` against the order;
- ``limit``: a buy fills when the open is at or below the limit (at the open: a gap through is the
  better price) or the low touches it (at exactly the limit); a sell mirrors with the high. Never
  slipped beyond its limit;
- ``stop``: a buy triggers when the open is at or above the stop (fills at the open) or the high
  touches it (fills at the stop), slipped against the order; a sell mirrors with the low;
- ``stop_limit``: triggers like a stop, then is a limit. Triggered at the open, it is a limit for
  the whole bar; triggered intrabar, it fills on that bar only if the stop price itself is within
  its limit (at the stop, slipped but capped at the limit), else it rests as a limit from the next
  bar (which way the price went after the trigger is unknown, so no better fill is assumed).

When several resting orders touch on one bar, stops are filled before limits (a bracket's
stop-loss and take-profit both touched on one bar: the stop-loss wins and the take-profit is
cancelled as its OCO sibling) — the worse outcome for the account, never the better.

Partial fills: what one order fills at one check is capped by the size available to it
(``available_size``): the displayed size at the touch when the quote carries one (``ask_size`` for
a buy, ``bid_size`` for a sell), else ``max_volume_fraction`` of the bar's (quote's) volume, else
nothing (a full fill). Each order meets the whole available size (orders do not deplete it for each
other). The rest rests (GTC / DAY), or is cancelled (IOC); FOK fills all or nothing
(``capped_qty``).

Fees: ``fee_bps`` of the notional plus ``fee_fixed`` per order fill. Binary outcome contracts cost
``price × size`` and their price lives in 0..1 on the market's tick.
"""

from __future__ import annotations

from typing import Any

ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIFS = ("gtc", "ioc", "fok", "day")
FILL_TIMINGS = ("signal_close", "next_open")
# new -> accepted -> partially_filled -> filled | cancelled | expired | rejected; unknown: sent,
# outcome not known yet (resolved by asking the venue, never by resending).
STATUSES = ("new", "accepted", "partially_filled", "filled", "cancelled", "expired", "rejected", "unknown")
OPEN_STATUSES = frozenset({"new", "accepted", "partially_filled", "unknown"})
INSTRUMENT_KINDS = ("spot", "binary")
DAY_SECONDS = 86400


def slipped(side: str, price: Any, slip: Any) -> Any:
    """``price`` moved against the order by the fraction ``slip`` (buy up, sell down)."""
    return price * (1 + slip) if side == "buy" else price * (1 - slip)


def cap(side: str, price: Any, limit: Any) -> Any:
    """A price never beyond a limit (a buy pays at most, a sell gets at least, its limit)."""
    if limit is None:
        return price
    return min(price, limit) if side == "buy" else max(price, limit)


def price_estimate(side: str, otype: str, limit: Any, stop: Any, price: Any, slip: Any) -> Any:
    """The worst price a new order can fill at now (at the side price ``price``), or its limit when
    it would rest: what the risk gate values an order at, in paper trading and in backtests, and
    what a signal entry is sized with (``entry_qty``), so an entry sized to capital_per_trade passes.

    market: ``price`` slipped; a limit marketable now: that, never beyond its limit, else the limit
    (a stop-limit: its limit); a stop: the worse of the slipped price and the slipped stop.
    """
    if otype in ("limit", "stop_limit"):
        if otype == "limit" and ((side == "buy" and price <= limit) or (side == "sell" and price >= limit)):
            return cap(side, slipped(side, price, slip), limit)
        return limit
    market = slipped(side, price, slip)
    if otype == "stop" and stop is not None:
        at_stop = slipped(side, stop, slip)
        return max(market, at_stop) if side == "buy" else min(market, at_stop)
    return market


def available_size(volume: Any, fraction: Any, displayed: Any = None) -> Any:
    """What one order may fill at one check: the displayed size at the touch when the quote carries
    one, else ``fraction`` of the bar's volume; None: no cap (a full fill)."""
    if displayed is not None:
        return displayed
    if fraction is None or volume is None:
        return None
    return volume * fraction


def capped_qty(remaining: Any, available: Any, tif: str) -> Any:
    """What an order with ``remaining`` to fill fills when ``available`` is on offer (None: all of
    it); FOK is all or nothing (0 when the size falls short)."""
    if available is None or available >= remaining:
        return remaining
    if tif == "fok" or available <= 0:
        return remaining * 0
    return available


def on_arrival(
    side: str, otype: str, limit: Any, stop: Any, price: Any, slip: Any
) -> tuple[Any | None, bool]:
    """A new order seen at the signal price ``price`` (``signal_close``): ``(fill price or None,
    triggered)``. A market order fills; a limit or a stop already through the price acts now."""
    if otype == "market":
        return slipped(side, price, slip), True
    if otype == "limit":
        if (side == "buy" and price <= limit) or (side == "sell" and price >= limit):
            return cap(side, slipped(side, price, slip), limit), True
        return None, False
    triggered = price >= stop if side == "buy" else price <= stop
    if not triggered:
        return None, False
    if otype == "stop":
        return slipped(side, price, slip), True
    if (side == "buy" and price <= limit) or (side == "sell" and price >= limit):
        return cap(side, slipped(side, price, slip), limit), True
    return None, True


def on_bar(
    side: str,
    otype: str,
    limit: Any,
    stop: Any,
    triggered: bool,
    o: Any,
    h: Any,
    lo: Any,
    slip: Any,
) -> tuple[Any | None, bool]:
    """A resting order checked against a new bar: ``(fill price or None, triggered now)``."""
    buy = side == "buy"
    if otype == "market":
        return slipped(side, o, slip), True
    if otype == "stop_limit" and triggered:
        otype = "limit"
    if otype == "limit":
        if (buy and o <= limit) or (not buy and o >= limit):
            return o, True
        if (buy and lo <= limit) or (not buy and h >= limit):
            return limit, True
        return None, triggered
    # stop or untriggered stop-limit
    if (buy and o >= stop) or (not buy and o <= stop):
        if otype == "stop":
            return slipped(side, o, slip), True
        # triggered at the open: a limit for the whole bar
        if (buy and o <= limit) or (not buy and o >= limit):
            return cap(side, slipped(side, o, slip), limit), True
        if (buy and lo <= limit) or (not buy and h >= limit):
            return limit, True
        return None, True
    if (buy and h >= stop) or (not buy and lo <= stop):
        if otype == "stop":
            return slipped(side, stop, slip), True
        if (buy and stop <= limit) or (not buy and stop >= limit):
            return cap(side, slipped(side, stop, slip), limit), True
        return None, True
    return None, False


def fee_for(notional: Any, fee_rate: Any, fee_fixed: Any) -> Any:
    """``fee_rate`` (bps / 10^4) of the notional plus the fixed fee per order fill."""
    return abs(notional) * fee_rate + fee_fixed


def margin_problem(
    pos_qty: Any, signed_qty: Any, price: Any, fee: Any, cash: Any, leverage: Any, allow_short: bool
) -> str | None:
    """The deny code for a fill the account cannot carry, or None.

    A fill that only reduces the position always passes. Otherwise the position after the fill,
    valued at the fill price, must fit ``leverage ×`` the equity left after the fee (leverage 1: no
    order the account cannot pay for), and a short needs an account that allows shorting.
    """
    new_qty = pos_qty + signed_qty
    if new_qty == 0 or (pos_qty != 0 and (new_qty > 0) == (pos_qty > 0) and abs(new_qty) <= abs(pos_qty)):
        return None
    if new_qty < 0 and not allow_short:
        return "SHORT_NOT_ALLOWED"
    equity_after = cash - fee + pos_qty * price
    if abs(new_qty) * price > leverage * equity_after:
        return "INSUFFICIENT_BALANCE"
    return None


def gate_problem(
    notional: Any,
    limits: dict[str, Any] | None,
    *,
    position_cost: Any,
    deployed: Any,
    open_positions: int,
    has_position: bool,
    daily_pnl: Any,
) -> tuple[str, str] | None:
    """The instance's capital rules for an order that adds risk: ``(deny code, message)`` or None.

    The same checks, in the same order, as paper and live trading's gate
    (``stratbox.trading.risk``): daily loss, capital per trade, max positions, max position size,
    instance capital. ``limits``: ``max_daily_loss``, ``capital_per_trade``, ``max_positions``,
    ``max_position_size``, ``total_capital`` (a missing key is no limit).
    """
    if not limits:
        return None
    max_loss = limits.get("max_daily_loss")
    if max_loss is not None and daily_pnl < 0 and -daily_pnl >= max_loss:
        return "DAILY_LOSS_LIMIT", f"today's loss {-daily_pnl:.2f} reached max_daily_loss {max_loss}"
    per_trade = limits.get("capital_per_trade")
    if per_trade is not None and notional > per_trade:
        return (
            "CAPITAL_PER_TRADE_EXCEEDED",
            f"order notional {notional:.2f} exceeds capital_per_trade {per_trade}",
        )
    max_positions = limits.get("max_positions")
    if max_positions is not None and not has_position and open_positions >= max_positions:
        return "MAX_POSITIONS_REACHED", f"{open_positions} of max_positions {max_positions} open"
    max_size = limits.get("max_position_size")
    if max_size is not None and position_cost + notional > max_size:
        return (
            "MAX_POSITION_SIZE_EXCEEDED",
            f"position would be {position_cost + notional:.2f}, above max_position_size {max_size}",
        )
    total = limits.get("total_capital")
    if total is not None and deployed + notional > total:
        return (
            "INSTANCE_CAPITAL_EXHAUSTED",
            f"deployed {deployed:.2f} + {notional:.2f} exceeds total_capital {total}",
        )
    return None


def bracket_level(value: Any, entry_price: float, side: str, leg: str) -> float | None:
    """A stop-loss or take-profit level: a number is a price; a string ``"2%"`` is that fraction of
    the entry fill price, below it for a long's stop-loss and above it for a long's take-profit
    (mirrored for a short). None for a missing leg."""
    if value is None:
        return None
    if type(value) is str:
        frac = float(value[:-1]) / 100
        down = (leg == "sl") == (side == "buy")
        return entry_price * (1 - frac) if down else entry_price * (1 + frac)
    return float(value)


def day_end(ts: float) -> float:
    """When a DAY order placed at ``ts`` expires: the next UTC midnight."""
    return (ts // DAY_SECONDS + 1) * DAY_SECONDS


def binary_price_problem(price: Any, tick: Any) -> str | None:
    """A binary contract's price must be a probability strictly inside 0..1, on the market's tick."""
    if not 0 < price < 1:
        return "INVALID_PRICE"
    if tick and abs(price / tick - round(price / tick)) > 1e-9:
        return "OFF_TICK"
    return None


def entry_qty(notional: Any, price: Any, lot: Any) -> Any:
    """A signal entry's quantity: ``notional`` at ``price`` (``price_estimate`` of a market order,
    the price the gate values it at), floored to the market's ``lot`` (0: no lot). The engine
    (Decimals) and the backtester (floats) size with this one function."""
    if price <= 0:
        return notional * 0
    qty = notional / price
    if lot > 0:
        steps = qty / lot
        n = int(steps)
        if steps - n > 1 - 1e-9:  # float noise: 2.9999999999 lots are 3
            n += 1
        qty = n * lot
    return qty


def entry_notional(method: str, capital_per_trade: Any, total_capital: Any, p: Any, percent: Any) -> Any:
    """Capital for one signal entry by the instance's sizing method, never above capital_per_trade
    (the engine, paper and live, and the backtester size with this one function).

    fixed: capital_per_trade. kelly: the Kelly fraction of an even-odds bet won with probability
    ``p`` (clamped to 0..1), f = 2p - 1 (0 when p <= 0.5), of total capital. percent_capital:
    ``percent`` (clamped to 100) percent of total capital.
    """
    if method == "kelly":
        notional = total_capital * max(p * 0, 2 * p - 1)
    elif method == "percent_capital":
        notional = total_capital * min(percent, percent * 0 + 100) / 100
    else:
        notional = capital_per_trade
    return min(notional, capital_per_trade)
