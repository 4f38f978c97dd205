"""The user (order/fill) streams through the venues' official clients: alpaca-py's TradingStream
(`trade_updates`) and ccxt pro's `watch_orders` (Binance's user data stream), against venuesim.

The reports are the venue's cumulative view of an order, so the last report of an order is what
the venue holds; a dropped socket is reconnected and the gap closed over REST.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from stratbox.venues.base import OrderIntent, StreamHealth, VenueOrder
from tests.venues.conftest import SimVenue
from tests.venues.test_adapters import wait_for


@contextmanager
def streaming(
    sim: SimVenue, open_orders: list[tuple[str, str]] | None = None
) -> Iterator[tuple[list[VenueOrder], StreamHealth]]:
    """The adapter's user stream in a thread, connected; yields (reports so far, health)."""
    sim.config["reconnect_backoff"] = 0.05  # alpaca-py waits 1 s (and more) before a reconnect
    adapter = sim.adapter()
    reports: list[VenueOrder] = []
    stop, health = threading.Event(), StreamHealth()
    known = open_orders if open_orders is not None else []
    thread = threading.Thread(
        target=adapter.stream_orders, args=(reports.append, stop, health, lambda: list(known)), daemon=True
    )
    thread.start()
    try:
        wait_for(lambda: health.connects >= 1, timeout=20)
        yield reports, health
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def _last(reports: list[VenueOrder], client_order_id: str) -> VenueOrder | None:
    mine = [r for r in reports if r.client_order_id == client_order_id]
    return mine[-1] if mine else None


def _qty(sim: SimVenue) -> Decimal:
    return Decimal("2") if sim.symbol == "AAPL" else Decimal("0.5")


def test_new_partial_fill_and_cancel_arrive_over_the_user_stream(sim: SimVenue) -> None:
    adapter, qty = sim.adapter(), _qty(sim)
    inst = sim.venue.instruments[sim.venue_symbol]
    limit = inst.bid - inst.tick * 10
    with streaming(sim) as (reports, _health):
        adapter.place(OrderIntent("us-1", sim.symbol, "buy", qty, type="limit", limit_price=limit))
        assert wait_for(lambda: _last(reports, "us-1")).event == "new"
        # The ask comes down to the limit with half the quantity at the touch: a partial fill.
        sim.venue.set_quote(sim.venue_symbol, limit - inst.tick, limit, depth=qty / 2)
        partial = wait_for(lambda: (r := _last(reports, "us-1")) and r.filled_qty > 0 and r)
        assert partial.status == "partially_filled" and partial.filled_qty == qty / 2
        assert partial.avg_fill_price == limit
        adapter.cancel("us-1", sim.symbol)
        cancelled = wait_for(lambda: (r := _last(reports, "us-1")) and r.status == "cancelled" and r)
    assert cancelled.event == "canceled"
    assert cancelled.filled_qty == qty / 2 and cancelled.avg_fill_price == limit
    assert cancelled.venue_order_id and cancelled.symbol == sim.symbol


def test_fill_rejection_and_expiry_events(sim: SimVenue) -> None:
    adapter, qty = sim.adapter(), _qty(sim)
    inst = sim.venue.instruments[sim.venue_symbol]
    far = inst.bid - inst.tick * 100
    with streaming(sim) as (reports, _health):
        adapter.place(OrderIntent("us-fill", sim.symbol, "buy", qty))
        filled = wait_for(lambda: (r := _last(reports, "us-fill")) and r.status == "filled" and r)
        adapter.place(OrderIntent("us-rej", sim.symbol, "buy", qty, type="limit", limit_price=far))
        adapter.place(OrderIntent("us-exp", sim.symbol, "buy", qty, type="limit", limit_price=far))
        wait_for(lambda: _last(reports, "us-rej") and _last(reports, "us-exp"))
        by_client = {o.client_order_id: o for o in sim.venue.orders.values()}
        sim.venue.reject(by_client["us-rej"])
        sim.venue.expire(by_client["us-exp"])
        rejected = wait_for(lambda: (r := _last(reports, "us-rej")) and r.status == "rejected" and r)
        expired = wait_for(lambda: (r := _last(reports, "us-exp")) and r.status == "expired" and r)
    assert filled.event == "fill" and filled.filled_qty == qty and filled.avg_fill_price == inst.ask
    assert (rejected.event, expired.event) == ("rejected", "expired")


def test_a_dropped_stream_reconnects_and_the_fill_made_meanwhile_is_recovered(sim: SimVenue) -> None:
    adapter, qty = sim.adapter(), _qty(sim)
    inst = sim.venue.instruments[sim.venue_symbol]
    limit = inst.bid - inst.tick * 10
    known: list[tuple[str, str]] = []
    with streaming(sim, known) as (reports, health):
        adapter.place(OrderIntent("us-gap", sim.symbol, "buy", qty, type="limit", limit_price=limit))
        known.append(("us-gap", sim.symbol))
        wait_for(lambda: _last(reports, "us-gap"))
        with sim.venue.lock:  # the socket drops, and the order fills before any reconnect
            sim.venue.inject("drop_websocket")
            sim.venue.set_quote(sim.venue_symbol, limit - inst.tick, limit)
        recovered = wait_for(lambda: (r := _last(reports, "us-gap")) and r.status == "filled" and r)
        assert wait_for(lambda: health.connects >= 2)
    assert health.drops >= 1
    assert recovered.filled_qty == qty and recovered.avg_fill_price == limit
    # The stream itself never sent the fill (it happened while no socket was open): REST did.
    assert [r.event for r in reports if r.client_order_id == "us-gap" and r.status == "filled"][
        0
    ] == "recovered"


def test_a_fill_the_stream_never_reports_is_not_streamed(sim: SimVenue) -> None:
    """The injected fault the reconciler exists for: the venue fills, the user stream stays silent."""
    adapter, qty = sim.adapter(), _qty(sim)
    with streaming(sim) as (reports, _health):
        sim.venue.inject("unreported_fill")
        order = adapter.place(OrderIntent("us-silent", sim.symbol, "buy", qty))
        adapter.place(OrderIntent("us-loud", sim.symbol, "buy", qty))
        wait_for(lambda: (r := _last(reports, "us-loud")) and r.status == "filled")
    assert order.status == "filled"  # the venue filled it (REST says so) ...
    assert [r.status for r in reports if r.client_order_id == "us-silent"] == [
        "accepted"
    ]  # ... the stream only said "new"


def test_binance_listen_key_stream_sends_execution_reports(binance: SimVenue) -> None:
    """The listenKey flavour of Binance's user data stream (REST key, then `/ws/<listenKey>`)."""
    import json

    import requests
    from websockets.sync.client import connect

    headers = {"X-MBX-APIKEY": binance.credentials["api_key"]}
    assert requests.post(f"{binance.server.url}/api/v3/userDataStream", timeout=5).status_code == 401
    listen_key = requests.post(
        f"{binance.server.url}/api/v3/userDataStream", headers=headers, timeout=5
    ).json()["listenKey"]
    keepalive = requests.put(
        f"{binance.server.url}/api/v3/userDataStream",
        params={"listenKey": listen_key},
        headers=headers,
        timeout=5,
    )
    assert keepalive.status_code == 200
    ws_url = binance.server.url.replace("http://", "ws://") + f"/ws/{listen_key}"
    with connect(ws_url, open_timeout=5) as socket:
        time.sleep(0.2)  # the stream sends what happens once it is connected
        binance.adapter().place(OrderIntent("lk-1", binance.symbol, "buy", Decimal("0.01")))
        frames = [json.loads(socket.recv(timeout=5)) for _ in range(2)]
    assert [(f["e"], f["x"], f["X"], f["c"]) for f in frames] == [
        ("executionReport", "NEW", "NEW", "lk-1"),
        ("executionReport", "TRADE", "FILLED", "lk-1"),
    ]
    ask = binance.venue.instruments["BTCUSDT"].ask
    assert Decimal(frames[1]["z"]) == Decimal("0.01") and Decimal(frames[1]["L"]) == ask
    assert Decimal(frames[1]["Z"]) == Decimal("0.01") * ask
