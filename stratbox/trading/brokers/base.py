"""The broker interface every adapter implements and the types they share (the factory is in `__init__`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stratbox.trading.models import Order

Q8 = Decimal("0.00000001")


def q8(value: Decimal) -> Decimal:
    """Round to the ledger's 8 decimals (banker's rounding, so errors do not drift one way)."""
    return value.quantize(Q8, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class FillSpec:
    qty: Decimal
    price: Decimal
    fee: Decimal


class BrokerUnavailable(Exception):
    """The account's broker cannot take orders (e.g. live adapters, not built yet)."""


class Broker(Protocol):
    def estimate_price(
        self,
        *,
        side: str,
        type: str,
        limit_price: Decimal | None,
        quote: dict[str, Any],
        stop_price: Decimal | None = None,
    ) -> Decimal:
        """The worst price the order can fill at now (what the risk gate sizes with)."""
        ...

    def fee_for(self, notional: Decimal) -> Decimal: ...

    def submit(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        """Fills the order gets right now (empty: it rests, for a limit that the price did not cross)."""
        ...

    def fill_resting(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        """Fills for a resting order given a new quote (empty: the price has not crossed)."""
        ...

    def cancel(self, order: Order) -> None: ...
