"""The one venue adapter interface: plain data in and out, Decimal for every price and quantity.

An adapter wraps a venue's official client library and runs only in trusted processes (workers,
the feed), never in a sandbox host. Every call that reaches the venue first takes a token from the
venue account's shared bucket (`ratelimit.py`), so many workers on one key stay within its limits.

Errors: every venue failure becomes a `VenueError` with one of the codes below and the venue's own
message. `uncertain` marks a send whose outcome is unknown (timeout, reset, 5xx after the request
left): the caller must resolve it with `order_by_client_id`, never by sending again.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from threading import Event
from typing import Any

VENUE_REJECTED = "VENUE_REJECTED"
VENUE_RATE_LIMITED = "VENUE_RATE_LIMITED"
VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"
INSUFFICIENT_FUNDS_AT_VENUE = "INSUFFICIENT_FUNDS_AT_VENUE"
VENUE_AUTH_FAILED = "VENUE_AUTH_FAILED"
VENUE_ORDER_NOT_FOUND = "VENUE_ORDER_NOT_FOUND"
DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"


def dec(value: Any) -> Decimal:
    """A venue's number (the string it sent) as a Decimal, never through a float."""
    return Decimal(str(value))


def dec_or_none(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


class VenueError(Exception):
    def __init__(
        self, code: str, message: str, *, uncertain: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.uncertain = uncertain
        self.retry_after = retry_after


@dataclass(frozen=True)
class Capabilities:
    order_types: tuple[str, ...]
    time_in_force: tuple[str, ...]
    shorting: bool
    fractional: bool
    market_stream: bool  # quotes pushed over a websocket (else: REST polling)


@dataclass(frozen=True)
class Instrument:
    symbol: str  # the platform's symbol (AAPL, BTC/USDT)
    venue_symbol: str  # the venue's own id (AAPL, BTCUSDT)
    tick: Decimal
    lot: Decimal
    min_qty: Decimal
    status: str  # active | halted
    # As Market.trading_hours: {"tz", "open", "close", "days"} of the regular session; {}: always open.
    hours: dict[str, Any]
    name: str = ""
    asset_class: str = ""


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal
    ts: float

    @property
    def price(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class Bar:
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class OrderIntent:
    client_order_id: str
    symbol: str
    side: str  # buy | sell
    qty: Decimal
    type: str = "market"  # market | limit
    limit_price: Decimal | None = None
    tif: str = "gtc"


@dataclass(frozen=True)
class VenueOrder:
    venue_order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    status: str  # accepted | partially_filled | filled | cancelled | rejected | expired
    limit_price: Decimal | None = None
    raw_status: str = ""
    # Over the user stream: what happened (new | partial_fill | fill | canceled | rejected | expired),
    # or "recovered" for a state read over REST to close a stream gap; "" for a REST answer.
    event: str = ""


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: Decimal
    avg_price: Decimal


@dataclass(frozen=True)
class Balance:
    currency: str
    free: Decimal
    total: Decimal


@dataclass
class StreamHealth:
    """What a market stream reports about itself (connects, drops, polling fallback)."""

    connects: int = 0
    drops: int = 0
    polling: bool = False
    last_quote_ts: float | None = None
    errors: list[str] = field(default_factory=list)


QuoteHandler = Callable[[Quote], None]
# A user-stream report: the order as the venue holds it after an event (cumulative filled_qty and
# avg price), so applying one twice, or an older one after a newer one, changes nothing.
OrderReportHandler = Callable[[VenueOrder], None]
# The orders the caller thinks are open at the venue, as (client_order_id, symbol): after a
# (re)connect the stream asks the venue for each, closing whatever gap the socket left.
OpenOrdersProvider = Callable[[], list[tuple[str, str]]]


class VenueAdapter(abc.ABC):
    """A venue account through the venue's official client library."""

    venue: str  # the Market.venue code its instruments are stored under

    @abc.abstractmethod
    def capabilities(self) -> Capabilities: ...

    @abc.abstractmethod
    def check(self) -> None:
        """One read-only authenticated call; raises VenueError when the credentials do not work."""

    @abc.abstractmethod
    def instruments(self) -> list[Instrument]: ...

    @abc.abstractmethod
    def quotes(self, symbols: list[str]) -> dict[str, Quote]: ...

    @abc.abstractmethod
    def bars(self, symbol: str, *, interval_seconds: int, start: datetime, end: datetime) -> list[Bar]: ...

    @abc.abstractmethod
    def place(self, intent: OrderIntent) -> VenueOrder: ...

    @abc.abstractmethod
    def cancel(self, client_order_id: str, symbol: str) -> VenueOrder: ...

    @abc.abstractmethod
    def order_by_client_id(self, client_order_id: str, symbol: str) -> VenueOrder | None: ...

    @abc.abstractmethod
    def positions(self) -> list[Position]: ...

    @abc.abstractmethod
    def balances(self) -> list[Balance]: ...

    @abc.abstractmethod
    def stream_quotes(
        self, symbols: list[str], on_quote: QuoteHandler, stop: Event, health: StreamHealth
    ) -> None:
        """Deliver quotes until `stop` is set: the venue's stream with reconnects, else REST polling."""

    def stream_orders(
        self,
        on_report: OrderReportHandler,
        stop: Event,
        health: StreamHealth,
        open_orders: OpenOrdersProvider | None = None,
    ) -> None:
        """Deliver the account's order reports until `stop` is set: the venue's user stream, with
        reconnects; after every (re)connect the `open_orders` are read over REST (event "recovered")."""
        raise NotImplementedError(f"{type(self).__name__} has no user stream")

    def recover_orders(self, open_orders: OpenOrdersProvider | None, on_report: OrderReportHandler) -> int:
        """Close a stream gap: report each order we think open as the venue holds it now."""
        count = 0
        for client_order_id, symbol in open_orders() if open_orders is not None else []:
            try:
                order = self.order_by_client_id(client_order_id, symbol)
            except VenueError:
                continue  # the next reconnect or the reconciler asks again
            if order is not None:
                on_report(replace(order, event="recovered"))
                count += 1
        return count

    # The longest client order id the venue takes (Binance: 36; Alpaca: 128).
    client_id_max: int = 128

    def client_id_for(self, client_order_id: str) -> str:
        """The id this venue knows our order by: ours when it fits, else a deterministic digest of
        it (`sbx` + hex), the same in every process, so a restarted worker asks for the same id."""
        if len(client_order_id) <= self.client_id_max:
            return client_order_id
        return "sbx" + hashlib.sha256(client_order_id.encode()).hexdigest()[: min(61, self.client_id_max - 3)]

    def resolve(self, intent: OrderIntent) -> VenueOrder | None:
        """After an uncertain send: what the venue holds under our client_order_id (None: never arrived)."""
        return self.order_by_client_id(intent.client_order_id, intent.symbol)
