"""Live execution through `order_place` against both loopback venues, through their official clients.

Every scenario asserts what the venue itself holds afterwards (its orders and its request log) and
what our ledger holds (order status, fills, cash), with hand-computed numbers: a lost or a second
order shows up on one side or the other. A live order is sent once its journal row commits; here
the test's transaction stands for it (its on-commit callbacks run when `Live.place` returns). The
restart scenario (test_live_restart.py) commits for real, in another process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from stratbox.trading.models import Fill, Order, Position
from stratbox.trading.services.lifecycle import order_cancel
from stratbox.trading.services.live import live_orders_resolve, order_apply_venue_report
from stratbox.trading.services.orders import order_place
from stratbox.trading.services.resting import orders_mark_to_market
from stratbox.venues.base import OrderIntent
from tests.venues.conftest import Live, cash
from tests.venues.test_adapters import wait_for

pytestmark = pytest.mark.django_db


def test_a_market_order_is_journaled_sent_once_filled_and_booked_once(live: Live) -> None:
    ask = live.inst.ask
    result = live.place()
    order = result.order
    assert result.status == "filled" and result.deny_code is None, result
    [at_venue] = live.venue_orders()
    assert at_venue.client_order_id == order.venue_client_order_id and live.posts() == 1
    assert order.venue_order_id == str(at_venue.id if live.sim.symbol == "AAPL" else at_venue.seq)
    assert order.sent_at is not None and order.filled_qty == live.unit and order.fill_price == ask
    [fill] = Fill.objects.filter(order=order)
    assert (fill.qty, fill.price, fill.fee) == (live.unit, ask, 0)
    assert cash(live) == Decimal("100000") - live.unit * ask
    # The same report again, and an older one, book nothing more.
    report = live.sim.adapter().order_by_client_id(order.venue_client_order_id, live.sim.symbol)
    assert report is not None and report.status == "filled"
    order_apply_venue_report(live.account, report)
    older = dataclasses.replace(report, status="accepted", filled_qty=Decimal(0), avg_fill_price=None)
    again = order_apply_venue_report(live.account, older)
    assert again is not None and again.status == "filled" and again.filled_qty == live.unit
    assert Fill.objects.filter(order=order).count() == 1
    assert cash(live) == Decimal("100000") - live.unit * ask
    [position] = Position.objects.filter(instance=live.instance, closed_at__isnull=True)
    assert position.qty == live.unit and position.cost_basis == live.unit * ask
    assert (
        order_apply_venue_report(live.account, dataclasses.replace(report, client_order_id="not-ours"))
        is None
    )


def test_the_venues_refusal_is_stored_with_its_code_and_own_message(live: Live) -> None:
    key = live.sim.credentials.get("api_key_id") or live.sim.credentials["api_key"]
    live.sim.venue.accounts[key].cash = Decimal("10")  # our ledger has the cash, the venue does not
    result = live.place()
    assert result.status == "rejected" and result.deny_code == "INSUFFICIENT_FUNDS_AT_VENUE"
    assert ("insufficient buying power" if live.sim.symbol == "AAPL" else "insufficient balance") in (
        result.message
    )
    live.inst.status = "halted"
    halted = live.place()
    assert halted.status == "rejected" and halted.deny_code == "VENUE_REJECTED"
    assert "not tradable" in halted.message
    assert live.venue_orders() == [] and live.posts() == 2
    assert not Fill.objects.filter(instance=live.instance).exists() and cash(live) == Decimal("100000")
    # What the adapters cannot place is refused before it is journaled or sent.
    stop = live.place(type="stop", stop_price=float(live.inst.ask + 5))
    assert (
        stop.status == "rejected"
        and stop.deny_code == "VENUE_REJECTED"
        and "market and limit" in stop.message
    )
    assert live.posts() == 2


def test_partial_fill_then_cancel_keeps_the_filled_part_and_the_venue_decides(live: Live) -> None:
    inst = live.inst
    inst.depth = live.unit
    ask = inst.ask
    tif = "day" if live.sim.symbol == "AAPL" else "gtc"
    result = live.place(qty=live.unit * 3, type="limit", price=float(ask), tif=tif)
    assert result.status == "partially_filled" and result.order.filled_qty == live.unit
    assert cash(live) == Decimal("100000") - live.unit * ask
    # Resting live orders are the venue's: our own quotes never fill them.
    cheap = live.quote() | {"bid": float(ask) - 1, "ask": float(ask) - 1, "price": float(ask) - 1}
    assert orders_mark_to_market(market_id=live.instance.market_id, quote=cheap, now=timezone.now()) == []
    assert Fill.objects.filter(order=result.order).count() == 1
    # The venue fills another slice at a better price; the resolver's refresh books exactly it.
    lower = ask - Decimal("0.12") if live.sim.symbol == "AAPL" else ask - Decimal("10.10")
    live.sim.venue.set_quote(live.sim.venue_symbol, lower - Decimal("0.01"), lower)
    assert live_orders_resolve() == 1
    assert live_orders_resolve() == 0  # the same report again: nothing more
    assert [f.price for f in Fill.objects.filter(order=result.order).order_by("id")] == [ask, lower]
    assert order_cancel(instance=live.instance, client_order_id=result.order.client_order_id)
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == "cancelled" and order.filled_qty == 2 * live.unit
    [at_venue] = live.venue_orders()
    assert at_venue.status == "canceled" and at_venue.filled_qty == 2 * live.unit
    live.sim.venue.match()  # time passes at the venue: a cancelled order never fills again
    assert live_orders_resolve() == 0
    assert Fill.objects.filter(order=order).count() == 2
    assert cash(live) == Decimal("100000") - live.unit * ask - live.unit * lower
    [position] = Position.objects.filter(instance=live.instance, closed_at__isnull=True)
    assert position.qty == 2 * live.unit and position.cost_basis == live.unit * (ask + lower)


def test_a_duplicate_client_order_id_resolves_to_the_venues_order_not_a_second(live: Live) -> None:
    adapter = live.sim.adapter()
    venue_id = adapter.client_id_for(f"{live.instance.pk}-1-1")  # the id our first order is sent under
    earlier = adapter.place(OrderIntent(venue_id, live.sim.symbol, "buy", live.unit))
    result = live.place()
    assert result.status == "filled" and result.order.venue_order_id == earlier.venue_order_id
    assert len(live.venue_orders()) == 1 and live.posts() == 2
    assert Fill.objects.filter(order=result.order).count() == 1
    assert cash(live) == Decimal("100000") - live.unit * earlier.avg_fill_price


def _with_timeout(live: Live, settings: Any, seconds: float) -> None:
    config = {**settings.STRATBOX_VENUES[live.sim.name], "timeout": seconds}
    settings.STRATBOX_VENUES = {**settings.STRATBOX_VENUES, live.sim.name: config}


def test_timeout_after_accept_is_unknown_then_resolved_to_the_single_venue_order(
    live: Live, settings: Any
) -> None:
    _with_timeout(live, settings, 1.0)
    live.sim.venue.inject("timeout_after_accept", route="POST", delay=3)
    live.sim.venue.read_lag = 2.5  # the read path trails: the first question finds nothing yet
    ask = live.inst.ask
    result = live.place()
    assert result.status == "unknown" and "unclear send" in result.message
    assert live_orders_resolve() == 0  # not visible yet, and well within the grace period: still unknown
    assert Order.objects.get(pk=result.order.pk).status == "unknown"
    wait_for(lambda: live.sim.venue.visible(live.venue_orders()[0]), timeout=10)
    assert live_orders_resolve() == 1
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == "filled" and order.filled_qty == live.unit and order.deny_reason == ""
    assert len(live.venue_orders()) == 1 and live.posts() == 1  # asked, never resent
    assert Fill.objects.filter(order=order).count() == 1
    assert cash(live) == Decimal("100000") - live.unit * ask


def test_a_5xx_is_unknown_until_the_venue_is_asked_after_the_grace_period(live: Live) -> None:
    live.sim.venue.inject("error_5xx", route="POST")
    result = live.place()
    assert result.status == "unknown"
    assert live_orders_resolve() == 0
    later = timezone.now() + timedelta(seconds=61)
    assert live_orders_resolve(now=later) == 1
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == "rejected" and order.deny_code == "VENUE_UNAVAILABLE"
    assert "never received" in order.deny_reason
    assert live.venue_orders() == [] and live.posts() == 1
    assert cash(live) == Decimal("100000")


def test_credentials_never_reach_logs_api_bodies_or_snapshots(
    live: Live, caplog: Any, api_client: Any
) -> None:
    from stratbox.trading.selectors import instance_snapshot

    secrets = [v for v in live.sim.credentials.values()]
    with caplog.at_level(logging.DEBUG):
        assert live.place().status == "filled"
        live.sim.venue.inject("error_5xx", route="POST")
        assert live.place().status == "unknown"
        live_orders_resolve(now=timezone.now() + timedelta(seconds=61))
        key = live.sim.credentials.get("api_key_id") or live.sim.credentials["api_key"]
        live.sim.venue.accounts[key].cash = Decimal("1")
        assert live.place().status == "rejected"
    bodies = [
        api_client.get(url).content.decode()
        for url in ("/api/v1/orders/", "/api/v1/accounts/", f"/api/v1/accounts/{live.account.pk}/")
    ]
    assert all(f'"{live.account.pk}"' in b or str(live.account.pk) in b for b in bodies[1:])
    snapshot = json.dumps(instance_snapshot(instance=live.instance, quote=live.quote()), default=str)
    for secret in secrets:
        assert secret not in caplog.text
        assert all(secret not in body for body in bodies)
        assert secret not in snapshot
    assert "live order" in caplog.text  # the log did record the orders (by id, not by key)


def test_a_journal_never_sent_is_settled_after_the_grace_period_never_resent(live: Live) -> None:
    intent = {
        "kind": "order",
        "client_order_id": f"{live.instance.pk}-9-1",
        "side": "buy",
        "qty": float(live.unit),
        "type": "market",
        "price": None,
        "tag": None,
    }
    # Journaled inside a transaction that never commits here: the send waits for a commit that
    # never comes, as when the worker dies right after the journal.
    result = order_place(
        instance=live.instance, intent=intent, quote=live.quote(), mode="active", now=timezone.now()
    )
    assert result.status == "new" and result.order.sent_at is None
    assert live_orders_resolve() == 0
    assert live_orders_resolve(now=timezone.now() + timedelta(seconds=61)) == 1
    order = Order.objects.get(pk=result.order.pk)
    assert (
        order.status == "rejected"
        and order.deny_code == "VENUE_UNAVAILABLE"
        and "never sent" in order.deny_reason
    )
    assert live.posts() == 0 and live.venue_orders() == []


def test_turning_an_instance_off_cancels_its_resting_live_orders_at_the_venue(live: Live) -> None:
    from stratbox.trading.services.orders import orders_cancel_open

    bid = live.inst.bid
    resting = live.place(type="limit", price=float(bid - 10), tif="gtc")
    assert resting.status == "accepted" and resting.order.venue_order_id
    assert orders_cancel_open(instance=live.instance) == 1
    order = Order.objects.get(pk=resting.order.pk)
    assert order.status == "cancelled" and "turned off" in order.deny_reason
    [at_venue] = live.venue_orders()
    assert at_venue.status == "canceled"


def test_a_429_refuses_the_order_with_the_rate_limit_code_and_beat_resolves_the_rest(live: Live) -> None:
    from stratbox.trading.apps import BEAT_SCHEDULE
    from stratbox.trading.tasks import live_orders_resolve_task

    live.sim.venue.inject("rate_limit", route="POST", retry_after=1)
    limited = live.place()
    assert limited.status == "rejected" and limited.deny_code == "VENUE_RATE_LIMITED" and limited.message
    assert live.venue_orders() == []
    live.sim.venue.inject("error_5xx", route="POST")
    unclear = live.place()
    assert unclear.status == "unknown"
    assert BEAT_SCHEDULE["trading.live_orders_resolve"]["task"] == live_orders_resolve_task.name
    assert live_orders_resolve_task() == 0  # within the grace period: asked, still unknown
    assert Order.objects.get(pk=unclear.order.pk).status == "unknown"
    assert live.posts() == 2  # one POST per order: the refused one was not retried either


def test_a_cancel_that_loses_the_race_with_a_fill_ends_filled_and_booked_once(live: Live) -> None:
    bid, ask = live.inst.bid, live.inst.ask
    limit = bid - Decimal("1")
    resting = live.place(type="limit", price=float(limit), tif="gtc")
    assert resting.status == "accepted"
    # The market comes down through the limit: the venue fills it before our cancel arrives.
    live.sim.venue.set_quote(live.sim.venue_symbol, limit - Decimal("0.02"), limit)
    assert not order_cancel(instance=live.instance, client_order_id=resting.order.client_order_id)
    order = Order.objects.get(pk=resting.order.pk)
    assert order.status == "filled" and order.filled_qty == live.unit and order.fill_price == limit
    assert Fill.objects.filter(order=order).count() == 1
    assert live_orders_resolve() == 0
    assert cash(live) == Decimal("100000") - live.unit * limit
    assert ask > limit  # it rested first: the fill came from the venue, not from our quote


def test_credentials_the_keys_cannot_decrypt_reject_the_order_before_anything_is_sent(
    live: Live, settings: Any
) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]  # the account's key is gone
    result = live.place()
    assert result.status == "rejected" and result.deny_code == "BROKER_UNAVAILABLE"
    assert "cannot be decrypted" in result.message
    assert live.posts() == 0 and live.venue_orders() == []
