"""The paper broker: simulated fills at the quote, priced by the one fill model (`sandbox.fillmodel`)
that the backtester uses too.

A quote is read as a bar: a replayed bar's quote carries its open/high/low (and price = bid = ask =
close); a bare quote is the bar (p, p, p, p) of its side — a buy sees the ask, a sell the bid.
- on arrival (fill timing `signal_close`): a market order fills at its side * (1 ± slippage_bps /
  10^4); a limit marketable on arrival fills like it but never beyond its limit; a stop already
  through its trigger fills like a market order (a stop-limit: like a limit);
- fill timing `next_open`: every new order rests and is first checked against the next quote;
- a resting order is checked against each new quote's bar (`fillmodel.on_bar`): limits at the
  open or exactly at the limit when touched, stops at the open or at the stop (slipped); on a
  bare quote a crossed limit fills at exactly its limit (it was in the book) and a triggered stop
  at the quote's side, slipped;
- fee = fee_bps / 10^4 of the notional plus `fee_fixed` per fill, rounded to 8 decimals;
- partial fills (`fillmodel.available_size` / `capped_qty`, as in backtests): a quote that carries
  the book's displayed size at the touch (`ask_size` for a buy, `bid_size` for a sell) caps what an
  order fills on it; a quote without sizes (the simulated and replay feeds) caps it at the
  account's `max_volume_fraction` of the quote's volume — NULL, the default, is no cap: every
  fill is whole, as before partial fills existed (opt in per account, e.g. to match a backtest's
  `max_volume_fraction`). The rest rests (GTC / DAY, `partially_filled`) or is cancelled (IOC);
  FOK fills all or nothing.
Slippage and fees are per account (`Account.slippage_bps` / `fee_bps` / `fee_fixed`) with global
defaults `settings.STRATBOX_PAPER_SLIPPAGE_BPS` (5) and `settings.STRATBOX_PAPER_FEE_BPS` (10).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings

from sandbox import fillmodel as fm
from stratbox.trading.brokers.base import FillSpec, q8

if TYPE_CHECKING:
    from stratbox.trading.models import Account, Order

DEFAULT_SLIPPAGE_BPS = Decimal("5")
DEFAULT_FEE_BPS = Decimal("10")
_BPS = Decimal("10000")


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def default_slippage_bps() -> Decimal:
    return _dec(getattr(settings, "STRATBOX_PAPER_SLIPPAGE_BPS", DEFAULT_SLIPPAGE_BPS))


def default_fee_bps() -> Decimal:
    return _dec(getattr(settings, "STRATBOX_PAPER_FEE_BPS", DEFAULT_FEE_BPS))


def quote_bar(side: str, quote: dict[str, Any]) -> tuple[Decimal, Decimal, Decimal] | None:
    """(open, high, low) of the bar a quote stands for, as the order's side sees it; None for a
    bare quote (no bar behind it)."""
    if all(type(quote.get(k)) in (int, float) for k in ("open", "high", "low")):
        side_price = _dec(quote["ask"] if side == "buy" else quote["bid"])
        return _dec(quote["open"]), max(_dec(quote["high"]), side_price), min(_dec(quote["low"]), side_price)
    return None


class PaperBroker:
    def __init__(
        self,
        slippage_bps: Decimal | float | int = DEFAULT_SLIPPAGE_BPS,
        fee_bps: Decimal | float | int = DEFAULT_FEE_BPS,
        fee_fixed: Decimal | float | int = 0,
        fill_timing: str = "signal_close",
        max_volume_fraction: Decimal | float | None = None,
    ) -> None:
        self.slippage_bps = _dec(slippage_bps)
        self.fee_bps = _dec(fee_bps)
        self.fee_fixed = _dec(fee_fixed)
        self.fill_timing = fill_timing
        self.max_volume_fraction = _dec(max_volume_fraction) if max_volume_fraction is not None else None
        self._slip = self.slippage_bps / _BPS
        self._fee_rate = self.fee_bps / _BPS

    @classmethod
    def for_account(cls, account: Account) -> PaperBroker:
        return cls.for_params(
            account.slippage_bps,
            account.fee_bps,
            account.fee_fixed,
            account.fill_timing,
            account.max_volume_fraction,
        )

    @classmethod
    def for_params(
        cls,
        slippage_bps: Decimal | None,
        fee_bps: Decimal | None,
        fee_fixed: Decimal | None = None,
        fill_timing: str | None = None,
        max_volume_fraction: Decimal | None = None,
    ) -> PaperBroker:
        """An account's broker from its columns (NULL slippage / fee: the global default)."""
        slippage = slippage_bps if slippage_bps is not None else default_slippage_bps()
        fee = fee_bps if fee_bps is not None else default_fee_bps()
        return cls(slippage, fee, fee_fixed or 0, fill_timing or "signal_close", max_volume_fraction)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "slippage_bps": float(self.slippage_bps),
            "fee_bps": float(self.fee_bps),
            "fee_fixed": float(self.fee_fixed),
            "fill_timing": self.fill_timing,
        }
        if self.max_volume_fraction is not None:
            params["max_volume_fraction"] = float(self.max_volume_fraction)
        return params

    # --- prices ---------------------------------------------------------------------------

    @staticmethod
    def crosses(side: str, limit_price: Decimal, quote: dict[str, Any]) -> bool:
        if side == "buy":
            return _dec(quote["ask"]) <= limit_price
        return _dec(quote["bid"]) >= limit_price

    def estimate_price(
        self,
        *,
        side: str,
        type: str,
        limit_price: Decimal | None,
        quote: dict[str, Any],
        stop_price: Decimal | None = None,
    ) -> Decimal:
        """The worst price the order can fill at now, or its limit when it would rest
        (`fillmodel.price_estimate`, which the backtester's gate and both sizings use too)."""
        if type in ("limit", "stop_limit"):
            assert limit_price is not None
        side_price = _dec(quote["ask"] if side == "buy" else quote["bid"])
        return q8(fm.price_estimate(side, type, limit_price, stop_price, side_price, self._slip))

    def fee_for(self, notional: Decimal) -> Decimal:
        return q8(fm.fee_for(notional, self._fee_rate, self.fee_fixed))

    # --- Broker ---------------------------------------------------------------------------

    def fill_spec(self, qty: Decimal, price: Decimal) -> list[FillSpec]:
        price = q8(price)
        return [FillSpec(qty=qty, price=price, fee=self.fee_for(q8(qty * price)))]

    def _remaining(self, order: Order) -> Decimal:
        return order.qty - (order.filled_qty or 0)

    def available(self, side: str, quote: dict[str, Any]) -> Decimal | None:
        """What one order may fill on `quote` (None: all of it): the displayed size at the touch
        when the quote carries one, else `max_volume_fraction` of the quote's volume."""
        shown = _size(quote.get("ask_size" if side == "buy" else "bid_size"))
        volume = _size(quote.get("volume")) if self.max_volume_fraction is not None else None
        size = fm.available_size(volume, self.max_volume_fraction, shown)
        return None if size is None else q8(size)

    def _fills(self, order: Order, price: Decimal, quote: dict[str, Any]) -> list[FillSpec]:
        """The fill of what the order can fill at `price` on `quote` (none: nothing on offer, or a
        FOK that cannot fill whole)."""
        qty = fm.capped_qty(self._remaining(order), self.available(order.side, quote), order.tif)
        return self.fill_spec(qty, price) if qty > 0 else []

    def submit(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        """Fills on arrival (`signal_close`); none at `next_open`, where every order rests first."""
        if self.fill_timing == "next_open":
            return []
        side = order.side
        price, triggered = fm.on_arrival(
            side,
            order.type,
            order.limit_price,
            order.stop_price,
            _dec(quote["ask"] if side == "buy" else quote["bid"]),
            self._slip,
        )
        order.triggered = bool(triggered) and order.type == "stop_limit"
        return [] if price is None else self._fills(order, price, quote)

    def fill_resting(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        bar = quote_bar(order.side, quote)
        if bar is None:
            side_price = _dec(quote["ask"] if order.side == "buy" else quote["bid"])
            if order.type == "limit" or (order.type == "stop_limit" and order.triggered):
                # A bare quote through a resting limit: it was in the book, so it fills at its limit.
                assert order.limit_price is not None
                crossed = self.crosses(order.side, order.limit_price, quote)
                return self._fills(order, order.limit_price, quote) if crossed else []
            bar = (side_price, side_price, side_price)
        o, h, lo = bar
        price, triggered = fm.on_bar(
            order.side, order.type, order.limit_price, order.stop_price, order.triggered, o, h, lo, self._slip
        )
        order.triggered = bool(triggered) and order.type == "stop_limit"
        return [] if price is None else self._fills(order, price, quote)

    def cancel(self, order: Order) -> None:
        """Nothing to tell anyone: a paper order only exists in our ledger."""


def _size(value: Any) -> Decimal | None:
    """A quote's size or volume field as a Decimal (None when absent or not a finite number >= 0)."""
    if type(value) in (int, float) and math.isfinite(value) and value >= 0:
        return _dec(value)
    return None


def paper_broker_params(account: Account | None = None) -> dict[str, Any]:
    """`broker_params` for the sandbox backtest: the same fill model and margin rules as paper
    trading (an account's own, or the defaults: 1x, no shorting, fills at the signal close)."""
    broker = (
        PaperBroker.for_account(account)
        if account is not None
        else PaperBroker(default_slippage_bps(), default_fee_bps())
    )
    params = broker.params()
    params["leverage"] = float(account.leverage) if account is not None else 1.0
    # A backtest of no instance is a what-if that may short; an instance's follows its account.
    params["allow_short"] = bool(account.allow_short) if account is not None else True
    return params
