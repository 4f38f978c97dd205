"""The loopback venues' shared state: a small matching engine, accounts, rate limits and faults.

One `Venue` holds everything a protocol app (alpaca.py, binance.py) serves: instruments with a
reference quote and the quantity available at the touch, accounts keyed by API key (cash,
positions, orders), and the fault queue a test fills. The protocol apps translate the wire format
to calls on it and its answers back to the venue's own bodies; the engine knows no wire format.

Matching: an order that crosses the touch (market, or a limit at or through the opposite side)
fills at the touch price up to `Instrument.depth` per matching pass; the rest stays open
(`partially_filled`) and fills on later passes (`Venue.match()`, or a quote that moves through
its limit). A non-crossing limit rests until the quote reaches it. Buying needs the cash for the
whole order at placement (limit price, or the ask for a market order), as a cash account does.

User events: every change of an order (new, partial_fill, fill, canceled, rejected, expired) is
appended to `Venue.user_events` with a venue-wide sequence number and a copy of the order as it was
then; the protocol apps' user streams send the events of their account that arrive while they are
connected (a venue does not replay what happened while a client was away: that gap is the
client's to recover over REST). `inject("unreported_fill")` hides the next fill event from every
stream (the order still fills and REST shows it), which only a reconciler can notice.

Everything is guarded by one lock: the apps run in uvicorn's event loop, tests call in from their
own thread.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from decimal import Decimal

OPEN_STATUSES = ("new", "partially_filled")


class VenueRejection(Exception):
    """An order or request the venue refuses; `kind` picks the protocol's own error body."""

    def __init__(self, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.kind = (
            kind  # duplicate_client_order_id | insufficient_funds | bad_input | not_found | not_cancelable
        )


@dataclass
class Instrument:
    symbol: str  # the venue's own symbol (AAPL, BTCUSDT)
    base: str
    quote_ccy: str
    tick: Decimal
    lot: Decimal
    min_qty: Decimal
    bid: Decimal
    ask: Decimal
    depth: Decimal = Decimal("1000000")  # quantity fillable at the touch per matching pass
    status: str = "active"  # active | halted
    name: str = ""
    exchange: str = "NASDAQ"
    asset_class: str = "us_equity"
    shortable: bool = False
    fractionable: bool = True
    quote_seq: int = 0


@dataclass
class Fill:
    qty: Decimal
    price: Decimal
    ts: float


@dataclass
class Order:
    id: str
    account: str
    client_order_id: str
    symbol: str
    side: str  # buy | sell
    type: str  # market | limit
    qty: Decimal
    limit_price: Decimal | None
    tif: str
    created: float
    status: str = "new"
    filled_qty: Decimal = Decimal(0)
    filled_notional: Decimal = Decimal(0)
    updated: float = 0.0
    canceled: float | None = None
    fills: list[Fill] = field(default_factory=list)
    seq: int = 0  # venue-wide order number (Binance's numeric orderId)

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled_qty

    @property
    def avg_price(self) -> Decimal | None:
        return (self.filled_notional / self.filled_qty) if self.filled_qty else None


@dataclass
class UserEvent:
    seq: int
    account: str  # api key
    kind: str  # new | partial_fill | fill | canceled | rejected | expired
    order: Order  # a copy, as the order was right after the event
    fill: Fill | None = None  # the execution of a partial_fill / fill
    hidden: bool = False  # an injected "unreported fill": no user stream sends it


@dataclass
class Account:
    api_key: str
    secret: str
    cash: Decimal
    currency: str = "USD"
    positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol -> (qty, avg price)
    number: str = ""


@dataclass
class Fault:
    kind: str  # error_5xx | timeout_after_accept | rate_limit | drop_websocket | unreported_fill
    route: str = ""  # substring of "METHOD /path" it applies to ("" = any)
    times: int = 1
    delay: float = 8.0  # timeout_after_accept: seconds before the (too late) answer
    retry_after: int = 1  # rate_limit: the Retry-After header


class Venue:
    """One simulated venue (a protocol app serves one)."""

    def __init__(self, name: str, *, rate_limit: int = 0, rate_window: float = 1.0) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.instruments: dict[str, Instrument] = {}
        self.accounts: dict[str, Account] = {}
        self.orders: dict[str, Order] = {}
        self._by_client: dict[tuple[str, str], Order] = {}
        self._seq = 0
        self.faults: deque[Fault] = deque()
        # Rate limit per API key: at most `rate_limit` requests per `rate_window` seconds (0 = off).
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self._hits: dict[str, deque[float]] = {}
        self.rate_limited = 0  # how many requests were answered 429 (tests read it)
        self.requests: list[tuple[str, str, str]] = []  # (api key, method, path) of every request
        self.read_lag = 0.0  # seconds an order stays invisible to reads after it was accepted
        self.websocket_generation = 0  # bumped to drop every open websocket
        self.user_events: deque[UserEvent] = deque(maxlen=100_000)
        self._event_seq = 0
        self._unreported_fills = 0  # how many coming fill events the user streams never send

    # -- set-up -----------------------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> Instrument:
        with self.lock:
            self.instruments[instrument.symbol] = instrument
        return instrument

    def add_account(self, api_key: str, secret: str, cash: Decimal, currency: str = "USD") -> Account:
        with self.lock:
            account = Account(
                api_key, secret, Decimal(cash), currency, number=f"SIM{len(self.accounts) + 1:06d}"
            )
            self.accounts[api_key] = account
        return account

    def authenticate(self, api_key: str | None, secret: str | None) -> Account | None:
        account = self.accounts.get(api_key or "")
        if account is None or secret is None or account.secret != secret:
            return None
        return account

    # -- faults and limits ------------------------------------------------------------------------

    def inject(
        self, kind: str, *, route: str = "", times: int = 1, delay: float = 8.0, retry_after: int = 1
    ) -> None:
        with self.lock:
            if kind == "drop_websocket":
                self.websocket_generation += 1
                return
            if kind == "unreported_fill":
                self._unreported_fills += times
                return
            self.faults.append(Fault(kind, route, times, delay, retry_after))

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first queued fault that applies to this request (consumed once per use)."""
        target = f"{method} {path}"
        with self.lock:
            for fault in self.faults:
                if fault.route in target:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def over_limit(self, api_key: str) -> bool:
        """Record one request of this key; True when it exceeds the window's budget (answer 429)."""
        if not self.rate_limit:
            return False
        now = time.monotonic()
        with self.lock:
            hits = self._hits.setdefault(api_key, deque())
            while hits and hits[0] <= now - self.rate_window:
                hits.popleft()
            if len(hits) >= self.rate_limit:
                self.rate_limited += 1
                return True
            hits.append(now)
            return False

    def events_after(self, api_key: str, seq: int) -> list[UserEvent]:
        """The user events of one account after `seq` (what a connected user stream sends next)."""
        with self.lock:
            return [e for e in self.user_events if e.seq > seq and e.account == api_key]

    def last_event_seq(self) -> int:
        with self.lock:
            return self._event_seq

    # -- market data -------------------------------------------------------------------------------

    def set_quote(self, symbol: str, bid: Decimal, ask: Decimal, *, depth: Decimal | None = None) -> None:
        with self.lock:
            inst = self.instruments[symbol]
            inst.bid, inst.ask = Decimal(bid), Decimal(ask)
            if depth is not None:
                inst.depth = Decimal(depth)
            inst.quote_seq += 1
            self._match_symbol(symbol)

    # -- orders ------------------------------------------------------------------------------------

    def place(
        self,
        account: Account,
        *,
        client_order_id: str,
        symbol: str,
        side: str,
        type: str,
        qty: Decimal,
        limit_price: Decimal | None,
        tif: str,
    ) -> Order:
        with self.lock:
            inst = self.instruments.get(symbol)
            if inst is None:
                raise VenueRejection("unknown_symbol", f"unknown symbol {symbol}")
            if inst.status != "active":
                raise VenueRejection("bad_input", f"{symbol} is not tradable")
            if (account.api_key, client_order_id) in self._by_client:
                raise VenueRejection("duplicate_client_order_id")
            if side not in ("buy", "sell") or type not in ("market", "limit"):
                raise VenueRejection("bad_input", f"unsupported side/type {side}/{type}")
            if qty <= 0 or qty < inst.min_qty or (qty / inst.lot) % 1 != 0:
                raise VenueRejection(
                    "bad_quantity", f"qty {qty} does not fit lot {inst.lot} (min {inst.min_qty})"
                )
            if type == "limit":
                if limit_price is None or limit_price <= 0 or (limit_price / inst.tick) % 1 != 0:
                    raise VenueRejection(
                        "bad_price", f"limit price {limit_price} does not fit tick {inst.tick}"
                    )
            if side == "buy":
                price = limit_price if type == "limit" and limit_price is not None else inst.ask
                reserved = sum(
                    (
                        o.remaining * (o.limit_price or inst.ask)
                        for o in self._open(account)
                        if o.side == "buy"
                    ),
                    Decimal(0),
                )
                if qty * price + reserved > account.cash:
                    raise VenueRejection("insufficient_funds")
            else:
                held = account.positions.get(symbol, (Decimal(0), Decimal(0)))[0]
                pending = sum(
                    (o.remaining for o in self._open(account) if o.side == "sell" and o.symbol == symbol),
                    Decimal(0),
                )
                if not inst.shortable and qty + pending > held:
                    raise VenueRejection("insufficient_funds")
            self._seq += 1
            now = time.time()
            order = Order(
                id=str(uuid.uuid4()),
                account=account.api_key,
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=type,
                qty=qty,
                limit_price=limit_price,
                tif=tif,
                created=now,
                updated=now,
                seq=self._seq,
            )
            self.orders[order.id] = order
            self._by_client[(account.api_key, client_order_id)] = order
            self._emit(order, "new")
            self._match(order, inst)
            if order.type == "market" and order.status in OPEN_STATUSES and tif in ("ioc", "fok"):
                self._cancel(order)
            return order

    def visible(self, order: Order | None) -> Order | None:
        """The read path: an order younger than `read_lag` is not visible yet."""
        if order is None or (self.read_lag and time.time() - order.created < self.read_lag):
            return None
        return order

    def get(self, account: Account, order_id: str) -> Order | None:
        order = self.orders.get(order_id)
        return self.visible(order if order and order.account == account.api_key else None)

    def get_by_client_id(self, account: Account, client_order_id: str) -> Order | None:
        return self.visible(self._by_client.get((account.api_key, client_order_id)))

    def list_orders(self, account: Account, *, open_only: bool) -> list[Order]:
        with self.lock:
            orders = [o for o in self.orders.values() if o.account == account.api_key and self.visible(o)]
        return [o for o in orders if not open_only or o.status in OPEN_STATUSES]

    def cancel(self, account: Account, order: Order) -> Order:
        with self.lock:
            if order.status not in OPEN_STATUSES:
                raise VenueRejection("not_cancelable", f"order is {order.status}")
            self._cancel(order)
            return order

    def expire(self, order: Order) -> Order:
        """The venue expires an open order (a DAY order at the close, say): reported as `expired`."""
        with self.lock:
            if order.status in OPEN_STATUSES:
                order.status = "expired"
                order.updated = time.time()
                self._emit(order, "expired")
            return order

    def reject(self, order: Order) -> Order:
        """The venue rejects an order it had accepted (a risk check after acceptance)."""
        with self.lock:
            if order.status in OPEN_STATUSES:
                order.status = "rejected"
                order.updated = time.time()
                self._emit(order, "rejected")
            return order

    def match(self) -> None:
        """One matching pass over every open order (a test's 'time passes')."""
        with self.lock:
            for symbol in self.instruments:
                self._match_symbol(symbol)

    # -- internals ---------------------------------------------------------------------------------

    def _open(self, account: Account) -> list[Order]:
        return [o for o in self.orders.values() if o.account == account.api_key and o.status in OPEN_STATUSES]

    def _cancel(self, order: Order) -> None:
        order.status = "canceled"
        order.canceled = order.updated = time.time()
        self._emit(order, "canceled")

    def _emit(self, order: Order, kind: str, fill: Fill | None = None) -> None:
        hidden = False
        if fill is not None and self._unreported_fills > 0:
            self._unreported_fills -= 1
            hidden = True
        self._event_seq += 1
        copy = replace(order, fills=list(order.fills))
        self.user_events.append(UserEvent(self._event_seq, order.account, kind, copy, fill, hidden))

    def _match_symbol(self, symbol: str) -> None:
        inst = self.instruments[symbol]
        for order in sorted(self.orders.values(), key=lambda o: o.seq):
            if order.symbol == symbol and order.status in OPEN_STATUSES:
                self._match(order, inst)

    def _match(self, order: Order, inst: Instrument) -> None:
        price = inst.ask if order.side == "buy" else inst.bid
        if order.type == "limit" and order.limit_price is not None:
            crosses = price <= order.limit_price if order.side == "buy" else price >= order.limit_price
            if not crosses:
                return
        qty = min(order.remaining, inst.depth)
        qty = (qty / inst.lot).to_integral_value(rounding="ROUND_DOWN") * inst.lot
        if qty <= 0:
            return
        account = self.accounts[order.account]
        now = time.time()
        fill = Fill(qty, price, now)
        order.fills.append(fill)
        order.filled_qty += qty
        order.filled_notional += qty * price
        order.updated = now
        order.status = "filled" if order.remaining == 0 else "partially_filled"
        held, avg = account.positions.get(order.symbol, (Decimal(0), Decimal(0)))
        if order.side == "buy":
            account.cash -= qty * price
            new = held + qty
            avg = ((held * avg) + qty * price) / new if new else Decimal(0)
            held = new
        else:
            account.cash += qty * price
            held -= qty
        if held == 0:
            account.positions.pop(order.symbol, None)
        else:
            account.positions[order.symbol] = (held, avg)
        self._emit(order, "fill" if order.status == "filled" else "partial_fill", fill)
