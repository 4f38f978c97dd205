"""order_place: idempotency on client_order_id, untrusted-intent validation, mode re-checks, cancel."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from stratbox.trading.models import Fill, Order
from stratbox.trading.selectors import instance_snapshot
from stratbox.trading.services.orders import client_order_id_for, orders_cancel_open
from tests.trading.conftest import make_instance, make_quote, place


def test_same_client_order_id_twice_is_one_order_and_one_fill(instance, intents, paper_account, market):
    intent = intents("buy", 2)
    first = place(instance, intent, make_quote(market, 100))
    retry = place(instance, dict(intent), make_quote(market, 150))
    assert retry.order.pk == first.order.pk and retry.duplicate and retry.status == "filled"
    assert Order.objects.count() == 1 and Fill.objects.count() == 1
    paper_account.refresh_from_db()
    assert paper_account.balance == D("99800")


def test_a_retried_denial_returns_the_same_rejected_order(instance, intents, market):
    intent = intents("sell", 1)
    first = place(instance, intent, make_quote(market, 100))
    again = place(instance, intent, make_quote(market, 100))
    assert first.deny_code == again.deny_code == "INSUFFICIENT_POSITION"
    assert again.order.pk == first.order.pk and Order.objects.count() == 1


def test_client_order_id_format_helper(instance):
    assert client_order_id_for(instance=instance, tick_seq=42, n=0) == f"{instance.pk}-42-0"


class LyingInt(int):
    def __gt__(self, other):  # claims to be anything you like
        return True

    def __le__(self, other):
        return False


class LyingFloat(float):
    pass


class LyingStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": math.nan}, "qty"),
        ({"qty": math.inf}, "qty"),
        ({"qty": -1.0}, "qty"),
        ({"qty": 0}, "qty"),
        ({"qty": True}, "qty"),
        ({"qty": "1"}, "qty"),
        ({"qty": D("1")}, "qty"),
        ({"qty": LyingInt(1)}, "qty"),
        ({"qty": LyingFloat(1.0)}, "qty"),
        ({"qty": 1e13}, "qty"),
        ({"qty": 0.00001}, "qty"),  # below the lot size 0.0001
        ({"side": "short"}, "side"),
        ({"side": LyingStr("buy")}, "side"),
        ({"type": "trailing_stop"}, "type"),
        ({"type": "stop"}, "stop_price"),  # a stop needs its trigger
        ({"type": "stop", "stop_price": 90.0, "price": 91.0}, "price"),  # a stop carries no limit
        ({"tif": "gtd"}, "tif"),
        ({"reduce_only": 1}, "reduce_only"),
        ({"sl": "five%"}, "bracket"),
        ({"type": "limit", "price": None}, "price"),
        ({"type": "limit", "price": math.nan}, "price"),
        ({"type": "limit", "price": -5.0}, "price"),
        ({"price": 100.0}, "price"),  # a market order carries no price
        ({"tag": 7}, "tag"),
        ({"client_order_id": "someone-else-1-1"}, "client_order_id"),
        ({"client_order_id": 12}, "client_order_id"),
    ],
)
def test_invalid_intents_are_denied_and_store_nothing(
    instance, intents, paper_account, market, change, field
):
    intent = intents("buy", 1.0)
    intent.update(change)
    r = place(instance, intent, make_quote(market, 100))
    assert (r.status, r.deny_code, r.order) == ("rejected", "INVALID_ORDER", None)
    assert r.message.startswith(field)
    assert not Order.objects.exists() and not Fill.objects.exists()
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")


def test_other_instances_client_order_id_is_refused(tenant, instance, paper_account, market):
    other = make_instance(tenant, paper_account, market)
    r = place(
        instance,
        {"client_order_id": f"{other.pk}-1-1", "side": "buy", "qty": 1.0, "type": "market"},
        make_quote(market, 100),
    )
    assert r.deny_code == "INVALID_ORDER" and not Order.objects.exists()


def test_qty_is_floored_to_the_lot_size(instance, intents, market):
    r = place(instance, intents("buy", 1.23456789), make_quote(market, 100))
    assert r.order.qty == D("1.2345")


def test_forged_active_on_an_observing_instance_is_a_shadow_order(tenant, paper_account, market):
    from tests.trading.conftest import Intents

    inst = make_instance(tenant, paper_account, market, mode="observe")
    r = place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100), mode="active")
    assert (r.status, r.deny_code) == ("shadow", "MODE_OBSERVE")
    assert r.order.is_shadow
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")


def test_engine_saying_observe_wins_over_db_active(instance, intents, paper_account, market):
    r = place(instance, intents("buy", 1.0), make_quote(market, 100), mode="observe")
    assert r.status == "shadow"
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")


def test_cancel_open_orders(instance, intents, market):
    resting = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100)).order
    filled = place(instance, intents("buy", 1), make_quote(market, 100)).order
    assert orders_cancel_open(instance=instance) == 1
    assert Order.objects.get(pk=resting.pk).status == "cancelled"
    assert Order.objects.get(pk=filled.pk).status == "filled"


def test_instance_snapshot_is_built_from_the_ledger(instance, intents, paper_account, market):
    place(instance, intents("buy", 2), make_quote(market, 100))
    snap = instance_snapshot(instance=instance, quote=make_quote(market, 110))
    assert snap["position"]["qty"] == 2.0 and snap["position"]["unrealized_pnl"] == "20.00000000"
    assert snap["balance"] == "99800.00000000"
    assert snap["orders"][0]["status"] == "filled" and len(snap["positions"]) == 1
    assert snap["deployed_capital"] == "200.00000000"
