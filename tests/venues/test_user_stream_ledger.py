"""The user-stream consumer (what `run_venue_feed` runs) against both loopback venues: fills and
cancels the venue reports over its user stream land in the ledger exactly once, a report delivered
twice books nothing more, and a fill made while the socket was down is booked after the reconnect.

Transactional: the consumer runs in its own threads, with its own database connections, as in
the feed process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from stratbox.markets.models import Market
from stratbox.trading.models import Account, Fill, Order
from stratbox.trading.services.accounts import account_create
from stratbox.trading.services.orders import order_place
from stratbox.trading.venue_streams import UserStreams, report_apply, user_stream_health
from stratbox.venues.registry import venue_code
from tests.trading.conftest import make_instance
from tests.venues.conftest import KEY, SimVenue, approve
from tests.venues.test_adapters import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def streamed(
    sim: SimVenue, tenant: Any, settings: Any
) -> Iterator[tuple[SimVenue, Account, Any, UserStreams]]:
    settings.STRATBOX_CREDENTIALS_KEYS = [KEY]
    sim.config["reconnect_backoff"] = 0.05
    account = account_create(
        tenant=tenant,
        actor=None,
        name="Live",
        starting_balance=Decimal("100000"),
        kind="live",
        broker=sim.name,
        credentials=sim.credentials,
    )
    market = Market.objects.create(
        venue=venue_code(sim.name),
        symbol=sim.symbol,
        venue_symbol=sim.venue_symbol,
        tick_size=Decimal("0.01"),
    )
    instance = make_instance(tenant, account, market, mode="active")
    approve(instance, account)
    stop = threading.Event()
    streams = UserStreams(brokers=[sim.name], stop=stop, rescan=0.2)
    thread = streams.start()
    wait_for(lambda: (h := streams.health.get(str(account.pk))) and h.connects >= 1, timeout=30)
    try:
        yield sim, account, instance, streams
    finally:
        stop.set()
        thread.join(timeout=20)
        assert not thread.is_alive() and not any(t.is_alive() for t in streams.threads.values())


def _place(instance: Any, n: int, qty: Decimal, limit: Decimal, sim: SimVenue) -> Order:
    inst = sim.venue.instruments[sim.venue_symbol]
    quote = {
        "price": float(inst.bid),
        "bid": float(inst.bid),
        "ask": float(inst.ask),
        "volume": 1.0,
        "ts": time.time(),
    }
    intent = {
        "kind": "order",
        "client_order_id": f"{instance.pk}-1-{n}",
        "side": "buy",
        "qty": float(qty),
        "type": "limit",
        "price": float(limit),
        "tag": None,
    }
    result = order_place(instance=instance, intent=intent, quote=quote, mode="active", now=timezone.now())
    assert result.order is not None, result
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == "accepted", (order.status, order.deny_reason)
    return order


def _cash(account: Account) -> Decimal:
    return Account.objects.get(pk=account.pk).balance


def test_fills_and_cancels_over_the_user_stream_are_booked_once_and_a_drop_loses_none(
    streamed: tuple[SimVenue, Account, Any, UserStreams],
) -> None:
    sim, account, instance, streams = streamed
    inst = sim.venue.instruments[sim.venue_symbol]
    qty = Decimal("2") if sim.symbol == "AAPL" else Decimal("0.01")
    limit = inst.bid - inst.tick * 10

    # 1. A resting order half filled at the venue, then cancelled there: both arrive over the stream.
    first = _place(instance, 1, qty, limit, sim)
    sim.venue.set_quote(sim.venue_symbol, limit - inst.tick, limit, depth=qty / 2)
    wait_for(lambda: Order.objects.get(pk=first.pk).filled_qty == qty / 2)
    [venue_order] = [o for o in sim.venue.orders.values() if o.client_order_id == first.venue_client_order_id]
    # The ask moves away from the limit, and the order is cancelled at the venue (by hand, say).
    sim.venue.set_quote(sim.venue_symbol, limit + inst.tick * 10, limit + inst.tick * 12)
    sim.venue.cancel(sim.venue.accounts[next(iter(sim.venue.accounts))], venue_order)
    wait_for(lambda: Order.objects.get(pk=first.pk).status == "cancelled")
    [fill] = Fill.objects.filter(order=first)
    assert (fill.qty, fill.price) == (qty / 2, limit)
    assert _cash(account) == Decimal("100000") - qty / 2 * limit

    # 2. The same report delivered again (a venue's redelivery, a recovery read) books nothing more.
    report = sim.adapter().order_by_client_id(first.venue_client_order_id, sim.symbol)
    assert report is not None and report.status == "cancelled"
    report_apply(account, report)
    report_apply(account, report)
    assert Fill.objects.filter(order=first).count() == 1
    assert _cash(account) == Decimal("100000") - qty / 2 * limit

    # 3. The socket drops and the next order fills before any reconnect: booked after it, once.
    low = limit - inst.tick * 20
    second = _place(instance, 2, qty, low, sim)
    with sim.venue.lock:
        sim.venue.inject("drop_websocket")
        sim.venue.set_quote(sim.venue_symbol, low - inst.tick, low, depth=qty * 10)
    wait_for(lambda: Order.objects.get(pk=second.pk).status == "filled")
    health = streams.health[str(account.pk)]
    assert health.drops >= 1 and health.connects >= 2
    [fill2] = Fill.objects.filter(order=second)
    assert (fill2.qty, fill2.price) == (qty, low)
    assert _cash(account) == Decimal("100000") - qty / 2 * limit - qty * low
    published = wait_for(lambda: (h := user_stream_health(account.pk)) and h["reports"] >= 3 and h)
    assert published["connects"] >= 2
