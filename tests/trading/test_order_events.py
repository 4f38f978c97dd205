"""Every status change of an order is one `OrderEvent` (from, to, filled qty, reason, deny code),
written with the order's own statement, pushed after the commit, and readable by its tenant only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import DatabaseError, transaction

from stratbox.trading.models import Account, Order, OrderEvent
from stratbox.trading.order_events import subscribe_order_events, unsubscribe_order_events
from stratbox.trading.services.lifecycle import order_cancel, order_transition
from stratbox.trading.services.orders import orders_cancel_open, orders_mark_to_market
from stratbox.trading.services.settlement import market_resolve
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place

pytestmark = pytest.mark.django_db


def bar(market: Any, o: float, h: float, lo: float, c: float) -> dict[str, Any]:
    return make_quote(market, c) | {"open": o, "high": h, "low": lo, "close": c}


def mtm(market: Any, quote: dict[str, Any], seconds: int) -> list[Order]:
    return orders_mark_to_market(market_id=market.pk, quote=quote, now=NOW + timedelta(seconds=seconds))


def history(order: Order) -> list[tuple[str, str, D, str, str]]:
    return [
        (e.from_status, e.to_status, e.filled_qty, e.deny_code, e.reason)
        for e in OrderEvent.objects.filter(order=order).order_by("at", "id")
    ]


def changes(order: Order) -> list[tuple[str, str]]:
    return [(f, t) for f, t, *_ in history(order)]


def test_a_market_order_accepted_and_filled_at_once(instance, intents, market):
    r = place(instance, intents("buy", 2), make_quote(market, 100))
    assert history(r.order) == [("new", "accepted", D(0), "", ""), ("accepted", "filled", D(2), "", "")]
    event = OrderEvent.objects.filter(order=r.order).first()
    assert (event.tenant_id, event.at) == (instance.tenant_id, NOW)


def test_a_resting_limit_accepted_then_filled_by_a_later_quote(instance, intents, market):
    r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    assert changes(r.order) == [("new", "accepted")]
    (filled,) = mtm(market, bar(market, 91, 92, 89, 90), 60)
    assert history(filled)[-1] == ("accepted", "filled", D(1), "", "")
    assert OrderEvent.objects.filter(order=filled).last().at == NOW + timedelta(seconds=60)


def test_accepted_partially_filled_then_filled(instance, intents, market, paper_account):
    paper_account.max_volume_fraction = D("0.1")  # one order fills at most 10 % of a quote's volume
    paper_account.save(update_fields=["max_volume_fraction"])
    instance.account.refresh_from_db()
    r = place(instance, intents("buy", 5), make_quote(market, 100) | {"volume": 30})
    assert (r.status, r.order.filled_qty) == ("partially_filled", D(3))  # 10 % of 30
    mtm(market, bar(market, 101, 102, 100, 101) | {"volume": 30}, 60)  # the other 2
    assert history(r.order) == [
        ("new", "accepted", D(0), "", ""),
        ("accepted", "partially_filled", D(3), "", ""),
        ("partially_filled", "filled", D(5), "", ""),
    ]


def test_cancelled_by_the_strategy(instance, intents, market):
    r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    assert order_cancel(instance=instance, client_order_id=r.order.client_order_id, now=NOW) is True
    assert history(r.order)[1:] == [("accepted", "cancelled", D(0), "", "cancelled by the strategy")]
    assert order_cancel(instance=instance, client_order_id=r.order.client_order_id) is False
    assert len(history(r.order)) == 2  # nothing changed: no event


def test_an_unfilled_ioc_is_accepted_then_cancelled_in_one_insert(instance, intents, market):
    r = place(instance, intents("buy", 1, type="limit", price=90.0, tif="ioc"), make_quote(market, 100))
    assert history(r.order) == [
        ("new", "accepted", D(0), "", ""),
        ("accepted", "cancelled", D(0), "", "ioc: not filled at once"),
    ]


def test_a_day_order_expires(instance, intents, market):
    r = place(instance, intents("buy", 1, type="limit", price=90.0, tif="day"), make_quote(market, 100))
    midnight = int((datetime(2026, 3, 3, tzinfo=UTC) - NOW).total_seconds())
    mtm(market, bar(market, 95, 96, 94, 95), midnight)
    assert history(r.order)[1:] == [("accepted", "expired", D(0), "", "expired")]


def test_rejected_by_the_gate_with_its_deny_code(instance, intents, market):
    r = place(instance, intents("sell", 5), make_quote(market, 100))
    ((frm, to, filled, code, reason),) = history(r.order)
    assert (frm, to, filled, code) == ("new", "rejected", D(0), "INSUFFICIENT_POSITION")
    assert reason == r.order.deny_reason and reason


def test_a_resting_buy_rejected_when_the_balance_fell_short(instance, intents, market, paper_account):
    r = place(instance, intents("buy", 5, type="limit", price=90.0), make_quote(market, 100))
    Account.objects.filter(pk=paper_account.pk).update(balance=D("100"))  # spent elsewhere meanwhile
    mtm(market, bar(market, 91, 92, 89, 90), 60)
    assert history(r.order)[1:] == [
        ("accepted", "rejected", D(0), "INSUFFICIENT_BALANCE", "balance too low when the order was reached")
    ]
    assert Order.objects.get(pk=r.order.pk).deny_code == "INSUFFICIENT_BALANCE"


def test_unknown_and_its_resolution_go_through_the_same_hook(instance, intents, market):
    """What a live venue's send does when its outcome is unclear, then when the venue answers."""
    r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    order = Order.objects.get(pk=r.order.pk)
    with transaction.atomic():
        assert order_transition(order, "unknown", at=NOW, reason="send timed out") is True
        assert order_transition(order, "unknown", at=NOW) is False  # no change, no event
    order_transition(order, "accepted", at=NOW + timedelta(seconds=5), reason="the venue has it")
    assert history(order)[1:] == [
        ("accepted", "unknown", D(0), "", "send timed out"),
        ("unknown", "accepted", D(0), "", "the venue has it"),
    ]
    assert Order.objects.get(pk=order.pk).status == "accepted"


def test_bracket_legs_are_born_accepted_and_oco_cancels_the_other(instance, intents, market):
    r = place(instance, intents("buy", 5, sl=95.0, tp=110.0), make_quote(market, 100))
    legs = {o.leg: o for o in Order.objects.filter(parent=r.order)}
    assert changes(legs["sl"]) == changes(legs["tp"]) == [("new", "accepted")]
    mtm(market, bar(market, 104, 111, 103, 108), 60)
    assert changes(legs["tp"])[1:] == [("accepted", "filled")]
    assert history(legs["sl"])[1:] == [("accepted", "cancelled", D(0), "", "OCO: the other leg filled")]


def test_shadow_orders_record_their_birth_and_denial(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe")
    i = Intents(inst)
    ok = place(inst, i("buy", 1), make_quote(market, 100), mode="observe")
    assert history(ok.order) == [("new", "shadow", D(1), "MODE_OBSERVE", ok.order.deny_reason)]
    denied = place(inst, i("sell", 3), make_quote(market, 100), mode="observe")
    assert changes(denied.order) == [("new", "rejected")]
    assert history(denied.order)[0][3] == "INSUFFICIENT_POSITION"


def test_a_retry_writes_no_second_event(instance, intents, market):
    intent = intents("buy", 1)
    first = place(instance, intent, make_quote(market, 100))
    again = place(instance, dict(intent), make_quote(market, 100))
    assert again.duplicate and len(history(first.order)) == 2


def test_unloading_and_resolving_cancel_with_one_event_each(tenant, instance, intents, market):
    a = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    orders_cancel_open(instance=instance, now=NOW)
    assert history(a.order)[1:] == [("accepted", "cancelled", D(0), "", "the instance was unloaded")]
    market.kind, market.tick_size = "binary", D("0.01")
    market.save()
    other = make_instance(tenant, instance.account, market)
    i = Intents(other)
    bought = place(other, i("buy", 10), make_quote(market, 0.4))
    resting = place(other, i("buy", 1, type="limit", price=0.2), make_quote(market, 0.4))
    assert market_resolve(market=market, value=1, now=NOW) == 1
    assert history(resting.order)[1:] == [("accepted", "cancelled", D(0), "", "market resolved")]
    settle = Order.objects.get(instance=other, type="settlement")
    assert history(settle) == [("new", "accepted", D(0), "", ""), ("accepted", "filled", D(10), "", "")]
    assert changes(bought.order) == [("new", "accepted"), ("accepted", "filled")]  # untouched


def test_events_are_append_only(instance, intents, market):
    r = place(instance, intents("buy", 1), make_quote(market, 100))
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderEvent.objects.filter(order=r.order).update(reason="rewritten")


def test_pushed_once_committed_and_never_for_a_rollback(
    instance, intents, market, django_capture_on_commit_callbacks
):
    pushed: list[tuple[Any, Any, list[dict[str, Any]]]] = []

    def subscriber(tenant_id: Any, instance_id: Any, payloads: list[dict[str, Any]]) -> None:
        pushed.append((tenant_id, instance_id, payloads))

    subscribe_order_events(subscriber)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
            assert pushed == []  # not before the commit
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                order_cancel(instance=instance, client_order_id=r.order.client_order_id, now=NOW)
                raise RuntimeError("rolled back")
        assert len(pushed) == 1 and Order.objects.get(pk=r.order.pk).status == "accepted"
        with django_capture_on_commit_callbacks(execute=True):
            order_cancel(instance=instance, client_order_id=r.order.client_order_id, now=NOW)
    finally:
        unsubscribe_order_events(subscriber)
    assert [(t, i) for t, i, _ in pushed] == [(instance.tenant_id, instance.pk)] * 2
    (placed,), (cancelled,) = pushed[0][2], pushed[1][2]
    assert (placed["from"], placed["to"], placed["order_id"]) == ("new", "accepted", str(r.order.pk))
    assert cancelled == {
        "order_id": str(r.order.pk),
        "client_order_id": r.order.client_order_id,
        "is_shadow": False,
        "from": "accepted",
        "to": "cancelled",
        "filled_qty": "0.00000000",
        "deny_code": "",
        "reason": "cancelled by the strategy",
        "at": NOW.isoformat(),
    }


def test_the_api_shows_an_orders_events_to_its_tenant_only(
    api_client, other_api_client, instance, intents, market
):
    r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    order_cancel(instance=instance, client_order_id=r.order.client_order_id, now=NOW + timedelta(seconds=1))
    listed = api_client.get(f"/api/v1/orders/{r.order.pk}/events/")
    assert listed.status_code == 200
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in listed.json()] == [
        ("new", "accepted", ""),
        ("accepted", "cancelled", "cancelled by the strategy"),
    ]
    detail = api_client.get(f"/api/v1/orders/{r.order.pk}/").json()
    assert detail["status"] == "cancelled" and detail["events"] == listed.json()
    assert other_api_client.get(f"/api/v1/orders/{r.order.pk}/events/").status_code == 404
    assert other_api_client.get(f"/api/v1/orders/{r.order.pk}/").status_code == 404
    assert api_client.get("/api/v1/orders/not-a-uuid/events/").status_code == 404


def test_staff_see_an_orders_events_in_the_admin_read_only(client, instance, intents, market):
    from tests.factories import make_user

    r = place(instance, intents("sell", 5), make_quote(market, 100))
    client.force_login(make_user("ops@stratbox.test", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/trading/order/{r.order.pk}/change/").content.decode()
    events = page[page.index('id="events-group"') :]
    assert re.search(r'field-deny_code">\s*<p>INSUFFICIENT_POSITION</p>', events)
    assert re.search(r'field-to_status">\s*<p>Rejected', events)
    assert 'name="events-0-reason"' not in page  # shown, never editable
