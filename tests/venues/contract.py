"""The venue contract: what every adapter must do against a real venue, judged only from outside.

These scenarios use nothing but the adapter interface and what the venue answers, so the same code
runs against the loopback venues (`test_venue_contract.py`, in every suite run) and against a real
venue's test environment (`contract/test_alpaca_paper.py`, `make contract-alpaca`, by hand with
keys). Orders are placed far from the market and cancelled, so a real paper account is left as it
was: no fill, no position.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from stratbox.venues.base import (
    DUPLICATE_CLIENT_ORDER_ID,
    VENUE_AUTH_FAILED,
    OrderIntent,
    VenueAdapter,
    VenueError,
)

# The smallest order notional the scenarios use: above every major venue's minimum (Binance: 5-10).
MIN_NOTIONAL = Decimal("20")


def _wait_status(adapter: VenueAdapter, intent: OrderIntent, want: str, seconds: float = 15.0) -> str:
    """The order's status once it is `want` (a venue may answer a cancel before it is done)."""
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        order = adapter.order_by_client_id(intent.client_order_id, intent.symbol)
        status = order.status if order else "missing"
        if status == want:
            return status
        time.sleep(0.2)
    return status


def _far_limit(adapter: VenueAdapter, symbol: str) -> OrderIntent:
    """A buy limit at half the bid (rounded to the tick), sized to MIN_NOTIONAL: it cannot fill."""
    [instrument] = [i for i in adapter.instruments() if i.symbol == symbol]
    quote = adapter.quotes([symbol]).get(symbol)
    reference = quote.bid if quote is not None and quote.bid > 0 else Decimal("2")
    price = max(
        instrument.tick, (reference / 2 / instrument.tick).to_integral_value(ROUND_DOWN) * instrument.tick
    )
    step = max(instrument.lot, instrument.min_qty)
    qty = max(instrument.min_qty, (MIN_NOTIONAL / price / step).to_integral_value(ROUND_UP) * step)
    return OrderIntent(
        client_order_id=f"sbx-contract-{uuid.uuid4().hex[:20]}",
        symbol=symbol,
        side="buy",
        qty=qty,
        type="limit",
        limit_price=price,
        tif="gtc",
    )


def run_contract(
    adapter: VenueAdapter, symbol: str, bad_credentials: Callable[[], VenueAdapter]
) -> list[str]:
    """Run every scenario against one venue account; returns the names of those that passed (all of
    them, or an AssertionError / VenueError says which failed and how)."""
    passed = []

    adapter.check()
    try:
        bad_credentials().check()
    except VenueError as exc:
        assert exc.code == VENUE_AUTH_FAILED, exc
    else:
        raise AssertionError("the venue accepted a wrong secret")
    passed.append("credentials: checked with a read-only call; a wrong secret is VENUE_AUTH_FAILED")

    instrument = next((i for i in adapter.instruments() if i.symbol == symbol), None)
    assert instrument is not None, f"{symbol} is not among the venue's instruments"
    assert instrument.tick > 0 and instrument.lot > 0 and instrument.min_qty >= 0, instrument
    passed.append("instruments: the symbol is listed with its tick and lot")

    quote = adapter.quotes([symbol]).get(symbol)
    assert quote is None or 0 <= quote.bid <= quote.ask, quote
    passed.append("quotes: bid <= ask")

    intent = _far_limit(adapter, symbol)
    placed = adapter.place(intent)
    assert placed.client_order_id == intent.client_order_id and placed.status == "accepted", placed
    assert placed.filled_qty == 0 and placed.qty == intent.qty, placed
    found = adapter.order_by_client_id(intent.client_order_id, symbol)
    assert found is not None and found.venue_order_id == placed.venue_order_id, found
    passed.append("place: a limit rests as accepted, found again by our client_order_id")

    try:
        adapter.place(intent)
    except VenueError as exc:
        assert exc.code == DUPLICATE_CLIENT_ORDER_ID and not exc.uncertain, exc
    else:
        raise AssertionError("the venue took a second order with the same client_order_id")
    again = adapter.resolve(intent)
    assert again is not None and again.venue_order_id == placed.venue_order_id, again
    passed.append("duplicate client_order_id: refused, the venue still holds the one order")

    adapter.cancel(intent.client_order_id, symbol)
    assert _wait_status(adapter, intent, "cancelled") == "cancelled"
    passed.append("cancel: the order ends cancelled, with nothing filled")

    never = OrderIntent(f"sbx-contract-never-{uuid.uuid4().hex[:12]}", symbol, "buy", intent.qty)
    assert adapter.resolve(never) is None
    passed.append("resolve: an order that never arrived is None (safe to send it)")

    balances = adapter.balances()
    assert balances and all(0 <= b.free <= b.total for b in balances), balances
    adapter.positions()
    passed.append("account: balances with free <= total; positions readable")
    return passed
