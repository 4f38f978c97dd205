"""The paper broker: honest, partial-fill-free simulated fills at the quote.

Fill model (the sandbox backtest uses the same constants through `paper_broker_params`):
- market buy fills at ask * (1 + slippage_bps / 10^4), market sell at bid * (1 - slippage_bps / 10^4);
- a limit order fills only when the price crosses it: a buy when ask <= limit, a sell when
  bid >= limit. Marketable on arrival, it fills like a market order but never beyond its limit;
  resting, it later fills at exactly its limit price (no slippage: it was in the book);
- fee = fee_bps / 10^4 of the notional (qty * price), rounded to 8 decimals.
Slippage and fee are per account (`Account.slippage_bps` / `fee_bps`) with global defaults
`settings.STRATBOX_PAPER_SLIPPAGE_BPS` (5) and `settings.STRATBOX_PAPER_FEE_BPS` (10).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings

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


class PaperBroker:
    def __init__(
        self,
        slippage_bps: Decimal | float | int = DEFAULT_SLIPPAGE_BPS,
        fee_bps: Decimal | float | int = DEFAULT_FEE_BPS,
    ) -> None:
        self.slippage_bps = _dec(slippage_bps)
        self.fee_bps = _dec(fee_bps)

    @classmethod
    def for_account(cls, account: Account) -> PaperBroker:
        return cls.for_params(account.slippage_bps, account.fee_bps)

    @classmethod
    def for_params(cls, slippage_bps: Decimal | None, fee_bps: Decimal | None) -> PaperBroker:
        """An account's broker from its `slippage_bps` / `fee_bps` columns (NULL: the global default)."""
        slippage = slippage_bps if slippage_bps is not None else default_slippage_bps()
        fee = fee_bps if fee_bps is not None else default_fee_bps()
        return cls(slippage, fee)

    def params(self) -> dict[str, float]:
        return {"slippage_bps": float(self.slippage_bps), "fee_bps": float(self.fee_bps)}

    # --- prices ---------------------------------------------------------------------------

    def market_price(self, side: str, quote: dict[str, Any]) -> Decimal:
        if side == "buy":
            return q8(_dec(quote["ask"]) * (1 + self.slippage_bps / _BPS))
        return q8(_dec(quote["bid"]) * (1 - self.slippage_bps / _BPS))

    @staticmethod
    def crosses(side: str, limit_price: Decimal, quote: dict[str, Any]) -> bool:
        if side == "buy":
            return _dec(quote["ask"]) <= limit_price
        return _dec(quote["bid"]) >= limit_price

    def estimate_price(
        self, *, side: str, type: str, limit_price: Decimal | None, quote: dict[str, Any]
    ) -> Decimal:
        if type == "limit":
            assert limit_price is not None
            if self.crosses(side, limit_price, quote):
                market = self.market_price(side, quote)
                return min(market, limit_price) if side == "buy" else max(market, limit_price)
            return limit_price
        return self.market_price(side, quote)

    def fee_for(self, notional: Decimal) -> Decimal:
        return q8(notional * self.fee_bps / _BPS)

    # --- Broker ---------------------------------------------------------------------------

    def _fill(self, qty: Decimal, price: Decimal) -> list[FillSpec]:
        return [FillSpec(qty=qty, price=price, fee=self.fee_for(q8(qty * price)))]

    def submit(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        if order.type == "limit":
            assert order.limit_price is not None
            if not self.crosses(order.side, order.limit_price, quote):
                return []
        price = self.estimate_price(
            side=order.side, type=order.type, limit_price=order.limit_price, quote=quote
        )
        return self._fill(order.qty, price)

    def fill_resting(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        assert order.limit_price is not None
        if not self.crosses(order.side, order.limit_price, quote):
            return []
        return self._fill(order.qty, order.limit_price)

    def cancel(self, order: Order) -> None:
        """Nothing to tell anyone: a paper order only exists in our ledger."""


def paper_broker_params(account: Account | None = None) -> dict[str, float]:
    """`broker_params` for the sandbox backtest: the same fill constants as paper trading."""
    broker = (
        PaperBroker.for_account(account)
        if account is not None
        else PaperBroker(default_slippage_bps(), default_fee_bps())
    )
    return broker.params()
