"""The adapter scenarios, each run against both loopback venues through the venue's official client.

Every scenario asserts what the venue itself holds afterwards (its order book and request log), not
only what the adapter returned: a second order or a lost one shows up there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stratbox.venues.base import (
    DUPLICATE_CLIENT_ORDER_ID,
    INSUFFICIENT_FUNDS_AT_VENUE,
    VENUE_RATE_LIMITED,
    VENUE_REJECTED,
    VENUE_UNAVAILABLE,
    OrderIntent,
    Quote,
    StreamHealth,
    VenueError,
)
from tests.venues.conftest import SimVenue


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _orders(sim: SimVenue) -> list[Any]:
    return list(sim.venue.orders.values())


def _posts(sim: SimVenue) -> int:
    return sum(
        1
        for _key, method, path in sim.venue.requests
        if method == "POST" and path.endswith("/order" if "binance" in sim.name else "/orders")
    )


def test_market_order_is_accepted_filled_and_shows_in_positions_and_balances(sim: SimVenue) -> None:
    adapter = sim.adapter()
    adapter.check()
    qty = Decimal("2") if sim.symbol == "AAPL" else Decimal("0.5")
    order = adapter.place(OrderIntent("sbx-1-accept", sim.symbol, "buy", qty))
    assert order.client_order_id == "sbx-1-accept"
    assert order.status == "filled" and order.filled_qty == qty
    ask = sim.venue.instruments[sim.venue_symbol].ask
    assert order.avg_fill_price == ask
    [held] = [o for o in _orders(sim)]
    assert held.client_order_id == "sbx-1-accept" and held.filled_qty == qty
    positions = {p.symbol: p.qty for p in adapter.positions()}
    assert positions.get(sim.symbol if sim.symbol == "AAPL" else "BTC") == qty
    cash = {b.currency: b.total for b in adapter.balances()}
    assert cash["USD" if sim.symbol == "AAPL" else "USDT"] == Decimal("100000") - qty * ask


def test_insufficient_funds_carries_the_venues_own_message(sim: SimVenue) -> None:
    adapter = sim.adapter()
    with pytest.raises(VenueError) as caught:
        adapter.place(OrderIntent("sbx-2-funds", sim.symbol, "buy", Decimal("100000")))
    assert caught.value.code == INSUFFICIENT_FUNDS_AT_VENUE
    assert (
        "insufficient buying power" if sim.symbol == "AAPL" else "insufficient balance"
    ) in caught.value.message
    assert not caught.value.uncertain
    assert _orders(sim) == []


def test_bad_input_is_rejected_with_the_venues_message(sim: SimVenue) -> None:
    adapter = sim.adapter()
    intent = OrderIntent(
        "sbx-3-bad", sim.symbol, "buy", Decimal("1"), type="limit", limit_price=Decimal("-5")
    )
    with pytest.raises(VenueError) as caught:
        adapter.place(intent)
    assert caught.value.code == VENUE_REJECTED
    assert caught.value.message
    assert _orders(sim) == []


def test_duplicate_client_order_id_is_refused_and_the_venue_keeps_one_order(sim: SimVenue) -> None:
    adapter = sim.adapter()
    qty = Decimal("1") if sim.symbol == "AAPL" else Decimal("0.1")
    first = adapter.place(OrderIntent("sbx-4-dup", sim.symbol, "buy", qty))
    with pytest.raises(VenueError) as caught:
        adapter.place(OrderIntent("sbx-4-dup", sim.symbol, "buy", qty))
    assert caught.value.code == DUPLICATE_CLIENT_ORDER_ID
    assert (
        "client_order_id must be unique" if sim.symbol == "AAPL" else "Duplicate order sent."
    ) in caught.value.message
    assert len(_orders(sim)) == 1
    assert adapter.order_by_client_id("sbx-4-dup", sim.symbol) == first


def test_partial_fill_then_cancel_keeps_the_filled_part(sim: SimVenue) -> None:
    inst = sim.venue.instruments[sim.venue_symbol]
    inst.depth = Decimal("1") if sim.symbol == "AAPL" else Decimal("0.1")
    adapter = sim.adapter()
    order = adapter.place(
        OrderIntent(
            "sbx-5-partial",
            sim.symbol,
            "buy",
            inst.depth * 3,
            type="limit",
            limit_price=inst.ask,
            tif="gtc" if sim.symbol != "AAPL" else "day",
        )
    )
    assert order.status == "partially_filled" and order.filled_qty == inst.depth
    cancelled = adapter.cancel("sbx-5-partial", sim.symbol)
    assert cancelled.status == "cancelled" and cancelled.filled_qty == inst.depth
    held = _orders(sim)[0]
    assert held.status == "canceled" and held.filled_qty == inst.depth
    sim.venue.match()  # time passes at the venue: a cancelled order never fills again
    assert held.filled_qty == inst.depth


def test_timeout_after_accept_is_resolved_by_asking_not_by_resending(sim: SimVenue) -> None:
    sim.venue.inject("timeout_after_accept", route="POST", delay=6)
    sim.venue.read_lag = 1.0  # the venue's read path trails its write path
    adapter = sim.adapter(timeout=1.5)
    qty = Decimal("1") if sim.symbol == "AAPL" else Decimal("0.1")
    intent = OrderIntent("sbx-6-timeout", sim.symbol, "buy", qty)
    with pytest.raises(VenueError) as caught:
        adapter.place(intent)
    assert caught.value.code == VENUE_UNAVAILABLE and caught.value.uncertain
    resolved = wait_for(lambda: adapter.resolve(intent))
    assert resolved.client_order_id == "sbx-6-timeout" and resolved.status == "filled"
    assert len(_orders(sim)) == 1
    assert _posts(sim) == 1  # one send: the doubt was resolved by a query


def test_server_error_before_accept_resolves_to_no_order(sim: SimVenue) -> None:
    sim.venue.inject("error_5xx", route="POST")
    adapter = sim.adapter()
    intent = OrderIntent(
        "sbx-7-5xx", sim.symbol, "buy", Decimal("1") if sim.symbol == "AAPL" else Decimal("0.1")
    )
    with pytest.raises(VenueError) as caught:
        adapter.place(intent)
    assert caught.value.code == VENUE_UNAVAILABLE and caught.value.uncertain
    assert adapter.resolve(intent) is None
    assert _orders(sim) == []
    assert _posts(sim) == 1  # the client did not retry the POST on its own


def test_a_429_pauses_every_user_of_the_account_for_retry_after(sim: SimVenue) -> None:
    adapter = sim.adapter()
    sim.venue.inject("rate_limit", retry_after=1)
    with pytest.raises(VenueError) as caught:
        adapter.balances()
    assert caught.value.code == VENUE_RATE_LIMITED and caught.value.retry_after == 1
    # A second adapter on the same account (another worker) waits for Retry-After before it sends.
    other = sim.adapter()
    bucket = other.bucket  # type: ignore[attr-defined]
    assert bucket.take() > 0
    assert other.balances()


def test_quotes_and_bars_are_decimals_from_the_venue(sim: SimVenue) -> None:
    adapter = sim.adapter()
    quote = adapter.quotes([sim.symbol])[sim.symbol]
    inst = sim.venue.instruments[sim.venue_symbol]
    assert (quote.bid, quote.ask) == (inst.bid, inst.ask)
    end = datetime.now(tz=UTC) - timedelta(hours=1)
    bars = adapter.bars(sim.symbol, interval_seconds=60, start=end - timedelta(hours=2), end=end)
    assert len(bars) in (120, 121)
    assert all(isinstance(b.close, Decimal) and b.low <= b.close <= b.high for b in bars)
    assert bars == sorted(bars, key=lambda b: b.ts)


def _streaming(
    sim: SimVenue, symbols: list[str]
) -> tuple[list[Quote], threading.Event, StreamHealth, threading.Thread]:
    adapter = sim.adapter()
    got: list[Quote] = []
    stop, health = threading.Event(), StreamHealth()
    thread = threading.Thread(
        target=adapter.stream_quotes, args=(symbols, got.append, stop, health), daemon=True
    )
    thread.start()
    return got, stop, health, thread


def test_quote_stream_survives_a_dropped_websocket(sim: SimVenue) -> None:
    got, stop, health, thread = _streaming(sim, [sim.symbol])
    inst = sim.venue.instruments[sim.venue_symbol]
    try:
        wait_for(lambda: health.connects >= 1)
        sim.venue.set_quote(sim.venue_symbol, inst.bid + 1, inst.ask + 1)
        first = inst.bid
        wait_for(lambda: any(q.bid == first for q in got))
        sim.venue.inject("drop_websocket")
        wait_for(lambda: health.connects >= 2)
        sim.venue.set_quote(sim.venue_symbol, inst.bid + 1, inst.ask + 1)
        second = inst.bid
        wait_for(lambda: any(q.bid == second for q in got))
        assert health.drops >= 1
        assert all(q.symbol == sim.symbol and isinstance(q.bid, Decimal) for q in got)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_quotes_fall_back_to_rest_polling_when_the_stream_is_gone(sim: SimVenue, settings: Any) -> None:
    key = "stream_url" if sim.symbol == "AAPL" else "ws_url"
    settings.STRATBOX_VENUES = {sim.name: {**sim.config, key: "ws://127.0.0.1:9/nothing-listens-here"}}
    got, stop, health, thread = _streaming(sim, [sim.symbol])
    inst = sim.venue.instruments[sim.venue_symbol]
    try:
        sim.venue.set_quote(sim.venue_symbol, inst.bid + 2, inst.ask + 2)
        moved = inst.bid
        wait_for(lambda: any(q.bid == moved for q in got))
        assert health.polling and health.connects == 0
    finally:
        stop.set()
        thread.join(timeout=30)
