"""The order model in paper trading, trade by trade, with numbers worked out by hand: stops,
stop-limits, brackets and OCO, cancel, IOC / FOK, DAY expiry, reduce-only, shorting, leverage,
shadow orders through the gate, next-open fills and binary contracts settled YES and NO.

The paper broker prices with `sandbox.fillmodel` (tests/sandbox/test_order_model.py runs the same
rules through the backtester's broker). Zero slippage and fees unless a test sets them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from stratbox.markets.models import Market
from stratbox.trading.models import Account, Fill, Order, Position
from stratbox.trading.services.lifecycle import order_cancel
from stratbox.trading.services.orders import orders_mark_to_market
from stratbox.trading.services.settlement import SettlementRefused, market_resolve
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place

pytestmark = pytest.mark.django_db


def bar_quote(market: Any, o: float, h: float, lo: float, c: float) -> dict[str, Any]:
    """A replayed bar's quote: price = bid = ask = close, with the bar's open/high/low."""
    return make_quote(market, c) | {"open": o, "high": h, "low": lo, "close": c}


def mtm(market: Any, quote: dict[str, Any], seconds: int) -> list[Order]:
    return orders_mark_to_market(market_id=market.pk, quote=quote, now=NOW + timedelta(seconds=seconds))


def fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def test_a_stop_buy_rests_then_fills_at_its_stop_when_the_bar_reaches_it(instance, intents, market):
    r = place(instance, intents("buy", 2, type="stop", stop_price=105.0), make_quote(market, 100))
    assert r.status == "accepted" and r.order.filled_at is None
    assert mtm(market, bar_quote(market, 101, 104.9, 100, 104), 60) == []
    (filled,) = mtm(market, bar_quote(market, 104, 106, 103, 105.5), 120)
    order = fresh(filled)
    assert (order.status, order.fill_price, order.filled_qty) == ("filled", D("105"), D("2"))
    position = Position.objects.get(instance=instance, closed_at__isnull=True)
    assert (position.qty, position.cost_basis) == (D(2), D(210))


def test_a_stop_limit_triggered_beyond_its_limit_rests_as_a_limit(instance, intents, market):
    r = place(
        instance, intents("buy", 1, type="stop_limit", stop_price=105.0, price=104.0), make_quote(market, 100)
    )
    assert mtm(market, bar_quote(market, 101, 106, 100, 105.5), 60) == []
    assert fresh(r.order).triggered is True and fresh(r.order).status == "accepted"
    mtm(market, bar_quote(market, 105, 105.5, 103.5, 104.5), 120)
    assert (fresh(r.order).status, fresh(r.order).fill_price) == ("filled", D("104"))


def test_a_bracket_take_profit_fills_and_cancels_its_stop_loss(instance, intents, market, paper_account):
    r = place(instance, intents("buy", 5, sl=95.0, tp="10%"), make_quote(market, 100))
    assert r.status == "filled"
    legs = {o.leg: o for o in Order.objects.filter(parent=r.order)}
    assert (legs["sl"].type, legs["sl"].stop_price, legs["sl"].side) == ("stop", D("95"), "sell")
    assert (legs["tp"].type, legs["tp"].limit_price, legs["tp"].qty) == ("limit", D("110"), D("5"))
    assert legs["sl"].reduce_only and legs["tp"].client_order_id == r.order.client_order_id + "-tp"
    mtm(market, bar_quote(market, 104, 111, 103, 108), 60)
    assert fresh(legs["tp"]).status == "filled" and fresh(legs["sl"]).status == "cancelled"
    # bought 5 at 100 (500), sold 5 at 110 (550): realized 50, balance 100,000 + 50
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100050")
    assert sum(f.realized_pnl for f in Fill.objects.filter(instance=instance)) == D("50")


def test_both_legs_touched_on_one_bar_the_stop_loss_wins(instance, intents, market):
    r = place(instance, intents("buy", 1, sl=95.0, tp=110.0), make_quote(market, 100))
    mtm(market, bar_quote(market, 100, 111, 94, 100), 60)
    legs = {o.leg: o for o in Order.objects.filter(parent=r.order)}
    assert fresh(legs["sl"]).status == "filled" and fresh(legs["sl"]).fill_price == D("95")
    assert fresh(legs["tp"]).status == "cancelled"


def test_bracket_legs_die_when_another_exit_closes_the_position(instance, intents, market):
    r = place(instance, intents("buy", 2, sl=90.0, tp=120.0), make_quote(market, 100))
    assert place(instance, intents("sell", 2), make_quote(market, 101)).status == "filled"
    assert set(Order.objects.filter(parent=r.order).values_list("status", flat=True)) == {"cancelled"}
    mtm(market, bar_quote(market, 121, 125, 119, 122), 60)  # the take-profit can open no short
    assert not Position.objects.filter(instance=instance, closed_at__isnull=True).exists()


def test_cancel_a_resting_limit_only_by_its_own_instance(tenant, instance, intents, market, paper_account):
    r = place(instance, intents("buy", 1, type="limit", price=90.0), make_quote(market, 100))
    other = make_instance(tenant, paper_account, market)
    assert order_cancel(instance=other, client_order_id=r.order.client_order_id) is False
    assert order_cancel(instance=instance, client_order_id=r.order.client_order_id) is True
    assert fresh(r.order).status == "cancelled"
    assert order_cancel(instance=instance, client_order_id=r.order.client_order_id) is False
    assert mtm(market, bar_quote(market, 89, 90, 88, 89), 60) == []


def test_ioc_and_fok_never_rest(instance, intents, market):
    ioc = place(instance, intents("buy", 1, type="limit", price=90.0, tif="ioc"), make_quote(market, 100))
    fok = place(instance, intents("buy", 1, type="limit", price=90.0, tif="fok"), make_quote(market, 100))
    assert ioc.status == fok.status == "cancelled"
    ok = place(instance, intents("buy", 1, type="limit", price=101.0, tif="ioc"), make_quote(market, 100))
    assert ok.status == "filled" and ok.order.fill_price == D("100")


def test_a_day_order_expires_at_midnight(instance, intents, market):
    r = place(instance, intents("buy", 1, type="limit", price=90.0, tif="day"), make_quote(market, 100))
    assert r.order.expires_at == datetime(2026, 3, 3, tzinfo=UTC)
    midnight = (datetime(2026, 3, 3, tzinfo=UTC) - NOW).total_seconds()
    assert mtm(market, bar_quote(market, 89, 90, 88, 89), int(midnight)) == []
    assert fresh(r.order).status == "expired"


def test_reduce_only_is_cut_to_the_position_or_cancelled(instance, intents, market):
    nothing = place(instance, intents("sell", 1, reduce_only=True), make_quote(market, 100))
    assert nothing.status == "cancelled"
    place(instance, intents("buy", 3), make_quote(market, 100))
    cut = place(instance, intents("sell", 5, reduce_only=True), make_quote(market, 100))
    assert (cut.status, cut.order.qty) == ("filled", D(3))
    assert not Position.objects.filter(instance=instance, closed_at__isnull=True).exists()


def test_shorting_refused_or_allowed_per_account(instance, intents, market, paper_account):
    refused = place(instance, intents("sell", 1), make_quote(market, 100))
    assert refused.deny_code == "INSUFFICIENT_POSITION"
    Account.objects.filter(pk=paper_account.pk).update(allow_short=True)
    short = place(instance, intents("sell", 5), make_quote(market, 100))
    assert short.status == "filled"
    position = Position.objects.get(instance=instance, closed_at__isnull=True)
    assert (position.qty, position.cost_basis, position.avg_price) == (D(-5), D(-500), D(100))
    cover = place(instance, intents("buy", 5), make_quote(market, 90))
    assert cover.status == "filled"
    # sold 5 at 100, bought back at 90: +50; cash 100,000 + 500 - 450
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100050")
    assert Fill.objects.get(order=cover.order).realized_pnl == D("50")


def test_margin_check_with_a_leverage_limit(tenant, market):
    account = Account.objects.create(tenant=tenant, name="Small", kind="paper", balance=D("1000"))
    big = {"total_capital": D("10000"), "capital_per_trade": D("10000"), "max_position_size": D("10000")}
    inst = make_instance(tenant, account, market, **big)
    i = Intents(inst)
    denied = place(inst, i("buy", 15), make_quote(market, 100))  # 1,500 > 1,000 at 1x
    assert denied.deny_code == "INSUFFICIENT_BALANCE"
    Account.objects.filter(pk=account.pk).update(leverage=D("2"))
    inst.refresh_from_db()
    assert place(inst, i("buy", 15), make_quote(market, 100)).status == "filled"  # 1,500 <= 2 x 1,000


def test_a_shadow_order_the_gate_would_deny_is_a_denied_shadow(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe", capital_per_trade=D("150"))
    i = Intents(inst)
    denied = place(inst, i("buy", 2), make_quote(market, 100), mode="observe")
    assert (denied.status, denied.deny_code, denied.order.is_shadow) == (
        "rejected",
        "CAPITAL_PER_TRADE_EXCEEDED",
        True,
    )
    passed = place(inst, i("buy", 1), make_quote(market, 100), mode="observe")
    assert passed.status == "shadow" and passed.order.filled_at is not None
    assert not Fill.objects.filter(order=denied.order).exists()


def test_next_open_fill_timing_fills_a_market_order_at_the_next_bar_open(instance, intents, market):
    Account.objects.filter(pk=instance.account_id).update(fill_timing="next_open")
    instance.refresh_from_db()
    r = place(instance, intents("buy", 1), bar_quote(market, 99, 101, 98, 100))
    assert r.status == "accepted" and r.order.filled_at is None
    mtm(market, bar_quote(market, 100.5, 102, 100, 101), 60)
    assert fresh(r.order).fill_price == D("100.5")


@pytest.fixture
def binary(db: None) -> Market:
    return Market.objects.create(
        venue="KALSHI",
        symbol="RAIN-NYC-YES",
        kind="binary",
        outcome="YES",
        tick_size=D("0.01"),
        lot_size=D("1"),
    )


@pytest.mark.parametrize(("outcome", "pnl"), [(1, D("60")), (0, D("-40"))])
def test_a_binary_contract_bought_and_settled(tenant, paper_account, binary, outcome, pnl):
    inst = make_instance(tenant, paper_account, binary)
    i = Intents(inst)
    off_tick = place(inst, i("buy", 100, type="limit", price=0.405), make_quote(binary, 0.40))
    assert off_tick.deny_code == "INVALID_ORDER" and "tick" in off_tick.message
    r = place(inst, i("buy", 100, type="limit", price=0.41), make_quote(binary, 0.40))
    assert (r.status, r.order.fill_price) == ("filled", D("0.40"))
    paper_account.refresh_from_db()
    assert paper_account.balance == D("99960")  # cost = price x size = 0.40 x 100
    assert market_resolve(market=binary, value=outcome) == 1
    settle = Order.objects.get(instance=inst, type="settlement")
    assert (settle.status, settle.fill_price, settle.qty) == ("filled", D(outcome), D(100))
    # YES: 100 x (1 - 0.40) = +60; NO: 100 x (0 - 0.40) = -40
    assert Fill.objects.get(order=settle).realized_pnl == pnl
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000") + pnl
    assert not Position.objects.filter(instance=inst, closed_at__isnull=True).exists()
    with pytest.raises(SettlementRefused):
        market_resolve(market=binary, value=1)
    inst.market.refresh_from_db()
    late = place(
        inst, i("buy", 1, type="limit", price=0.5), make_quote(binary, 0.40), now=inst.market.resolved_at
    )
    assert (late.status, late.deny_code) == ("rejected", "MARKET_CLOSED")
    assert "resolved (settled at" in late.message and "no longer trades" in late.message
