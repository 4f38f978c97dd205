"""Every deny code of the pre-trade gate: the code, the recorded rejected order, and nothing moved."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from stratbox.trading.models import Fill, Order, Position
from stratbox.trading.risk import Deny, OrderRequest, pre_trade_check
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place


def _denied(result, code):
    assert result.status == "rejected" and result.deny_code == code, result
    order = Order.objects.get(pk=result.order.pk)
    assert order.status == "rejected" and order.deny_code == code and order.deny_reason
    assert not Fill.objects.filter(order=order).exists()
    return order


def _balance(account):
    account.refresh_from_db()
    return account.balance


def test_every_code_is_upper_snake():
    assert {d.value for d in Deny} >= {
        "MODE_OFF",
        "MODE_OBSERVE",
        "NOT_APPROVED",
        "INVALID_ORDER",
        "CAPITAL_PER_TRADE_EXCEEDED",
        "MAX_POSITIONS_REACHED",
        "MAX_POSITION_SIZE_EXCEEDED",
        "INSTANCE_CAPITAL_EXHAUSTED",
        "TENANT_CAPITAL_LIMIT_EXCEEDED",
        "DAILY_LOSS_LIMIT",
        "ORDER_RATE_LIMIT",
        "INSUFFICIENT_BALANCE",
        "KILL_SWITCH",
        "PAUSED",
    }
    assert all(d.value == d.value.upper() for d in Deny)


def test_kill_switch(tenant, instance, intents, paper_account, market):
    tenant.killed_at = NOW
    tenant.save()
    _denied(place(instance, intents("buy", 1.0), make_quote(market, 100)), "KILL_SWITCH")
    assert _balance(paper_account) == D("100000")


def test_mode_off(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="off")
    _denied(place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100)), "MODE_OFF")


def test_pre_trade_check_says_mode_observe_when_the_db_says_observe(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe")
    req = OrderRequest(
        client_order_id=f"{inst.pk}-1-1", side="buy", type="market", qty=D(1), limit_price=None, tag=""
    )
    assert (
        pre_trade_check(instance=inst, order_request=req, quote=make_quote(market, 100)) == Deny.MODE_OBSERVE
    )


def test_live_account_is_never_approved_yet(tenant, market):
    from stratbox.trading.models import Account

    live = Account.objects.create(tenant=tenant, name="Live", kind="live")
    inst = make_instance(tenant, live, market)
    _denied(place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100)), "NOT_APPROVED")
    assert _balance(live) == D("100000")


def test_no_quote(instance, intents):
    _denied(place(instance, intents("buy", 1.0), None), "NO_QUOTE")


def test_capital_per_trade(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, capital_per_trade=D("100"))
    i = Intents(inst)
    assert place(inst, i("buy", 1.0), make_quote(market, 100)).status == "filled"  # exactly at the limit
    _denied(place(inst, i("buy", 1.01), make_quote(market, 100)), "CAPITAL_PER_TRADE_EXCEEDED")
    assert _balance(paper_account) == D("99900")


def test_max_positions(tenant, paper_account, market):
    from stratbox.markets.models import Market

    other_market = Market.objects.create(venue="SIM", symbol="ETH/USDT")
    inst = make_instance(tenant, paper_account, market, max_positions=1)
    Position.objects.create(
        tenant=tenant,
        account=paper_account,
        instance=inst,
        market=other_market,
        qty=D(1),
        cost_basis=D(10),
        avg_price=D(10),
        opened_at=NOW,
    )
    _denied(place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100)), "MAX_POSITIONS_REACHED")
    assert Position.objects.filter(market=market).count() == 0


def test_adding_to_an_open_position_does_not_count_as_a_new_one(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, max_positions=1)
    i = Intents(inst)
    place(inst, i("buy", 1.0), make_quote(market, 100))
    assert place(inst, i("buy", 1.0), make_quote(market, 100)).status == "filled"


def test_max_position_size(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, max_position_size=D("250"))
    i = Intents(inst)
    place(inst, i("buy", 2.0), make_quote(market, 100))
    _denied(place(inst, i("buy", 1.0), make_quote(market, 100)), "MAX_POSITION_SIZE_EXCEEDED")
    assert Position.objects.get(instance=inst).qty == 2


def test_instance_capital_counts_positions_and_resting_buys(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, total_capital=D("250"))
    i = Intents(inst)
    place(inst, i("buy", 1.0), make_quote(market, 100))
    assert place(inst, i("buy", 1.0, type="limit", price=90.0), make_quote(market, 100)).status == "accepted"
    # deployed 100 + 90 reserved; another 100 would make 290 > 250
    _denied(place(inst, i("buy", 1.0), make_quote(market, 100)), "INSTANCE_CAPITAL_EXHAUSTED")
    assert place(inst, i("buy", 0.5), make_quote(market, 100)).status == "filled"  # 240 fits


def test_tenant_capital_limit_spans_instances(tenant, paper_account, market):
    tenant.capital_limit = D("300")
    tenant.save()
    a, b = make_instance(tenant, paper_account, market), make_instance(tenant, paper_account, market)
    assert place(a, Intents(a)("buy", 2.0), make_quote(market, 100)).status == "filled"
    _denied(place(b, Intents(b)("buy", 2.0), make_quote(market, 100)), "TENANT_CAPITAL_LIMIT_EXCEEDED")
    assert not Position.objects.filter(instance=b).exists()


def test_daily_loss_limit_blocks_buys_but_lets_sells_out(tenant, paper_account, market):
    inst = make_instance(
        tenant,
        paper_account,
        market,
        max_daily_loss=D("50"),
        total_capital=D("5000"),
        max_position_size=D("5000"),
    )
    i = Intents(inst)
    place(inst, i("buy", 10.0), make_quote(market, 100))
    assert place(inst, i("buy", 0.1), make_quote(market, 96)).status == "filled"  # loss 40 < 50
    _denied(place(inst, i("buy", 0.1), make_quote(market, 95)), "DAILY_LOSS_LIMIT")  # loss 50.5
    assert place(inst, i("sell", 5.0), make_quote(market, 95)).status == "filled"


def test_daily_loss_counts_realized_losses_of_today_only(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, max_daily_loss=D("50"))
    i = Intents(inst)
    yesterday = NOW - timedelta(days=1)
    place(inst, i("buy", 10.0), make_quote(market, 100), now=yesterday)
    place(inst, i("sell", 10.0), make_quote(market, 90), now=yesterday)  # -100 yesterday
    assert place(inst, i("buy", 1.0), make_quote(market, 90)).status == "filled"
    place(inst, i("sell", 1.0), make_quote(market, 40))  # -50 today
    _denied(place(inst, i("buy", 1.0), make_quote(market, 40)), "DAILY_LOSS_LIMIT")


def test_order_rate_limit(instance, intents, market, settings):
    settings.STRATBOX_MAX_ORDERS_PER_MINUTE = 3
    for _ in range(3):
        assert place(instance, intents("buy", 0.1), make_quote(market, 100)).status == "filled"
    _denied(place(instance, intents("buy", 0.1), make_quote(market, 100)), "ORDER_RATE_LIMIT")
    later = NOW + timedelta(seconds=61)
    assert place(instance, intents("buy", 0.1), make_quote(market, 100), now=later).status == "filled"


def test_insufficient_balance_counts_resting_buys(tenant, market):
    from stratbox.trading.models import Account

    account = Account.objects.create(tenant=tenant, name="Small", balance=D("150"), starting_balance=D("150"))
    inst = make_instance(tenant, account, market)
    i = Intents(inst)
    _denied(place(inst, i("buy", 2.0), make_quote(market, 100)), "INSUFFICIENT_BALANCE")
    assert place(inst, i("buy", 1.0, type="limit", price=90.0), make_quote(market, 100)).status == "accepted"
    _denied(place(inst, i("buy", 0.7), make_quote(market, 100)), "INSUFFICIENT_BALANCE")  # 70 + 90 > 150
    assert _balance(account) == D("150")


def test_long_only_sell_beyond_the_position(instance, intents, market):
    place(instance, intents("buy", 1.0), make_quote(market, 100))
    _denied(place(instance, intents("sell", 1.5), make_quote(market, 100)), "INSUFFICIENT_POSITION")
    assert (
        place(instance, intents("sell", 1.0, type="limit", price=120.0), make_quote(market, 100)).status
        == "accepted"
    )
    # The resting sell already offers the whole position.
    _denied(place(instance, intents("sell", 0.5), make_quote(market, 100)), "INSUFFICIENT_POSITION")


@pytest.mark.parametrize("code", ["MODE_OFF", "KILL_SWITCH"])
def test_denials_are_shown_in_the_orders_api(api_client, tenant, paper_account, market, code):
    inst = make_instance(tenant, paper_account, market, mode="off" if code == "MODE_OFF" else "active")
    if code == "KILL_SWITCH":
        tenant.killed_at = NOW
        tenant.save()
    place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100))
    body = api_client.get("/api/v1/orders/", {"status": "rejected"}).json()
    assert [o["deny_code"] for o in body["results"]] == [code]
