"""Paper broker fills, positions and P&L, checked against numbers worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from stratbox.trading.models import Fill, Order, Position
from stratbox.trading.selectors import instance_stats
from stratbox.trading.services.orders import orders_mark_to_market
from tests.trading.conftest import NOW, make_quote, place


def _account_with_costs(account, slippage="10", fee="10", balance="10000"):
    account.slippage_bps, account.fee_bps = D(slippage), D(fee)
    account.balance = account.starting_balance = D(balance)
    account.save()
    return account


def test_market_round_trip_by_hand(instance, intents, paper_account, market):
    account = _account_with_costs(paper_account)

    # Buy 2 at ask 100 + 10 bp slippage = 100.1; notional 200.2, fee 10 bp = 0.2002.
    r1 = place(instance, intents("buy", 2.0), make_quote(market, 100, 99.9, 100))
    assert r1.status == "filled" and r1.deny_code is None
    assert r1.order.fill_price == D("100.1") and r1.order.fee == D("0.2002")
    account.refresh_from_db()
    assert account.balance == D("9799.5998")

    # Buy 1 at 110.11 (ask 110): cost basis 310.31 for 3, average 103.43666667.
    place(instance, intents("buy", 1), make_quote(market, 110, 109.9, 110))
    pos = Position.objects.get(instance=instance, closed_at__isnull=True)
    assert (pos.qty, pos.cost_basis, pos.avg_price) == (D(3), D("310.31"), D("103.43666667"))
    account.refresh_from_db()
    assert account.balance == D("9689.37969")

    # Sell 1.5 at bid 120 - 10 bp = 119.88: notional 179.82, removes half the cost (155.155),
    # realises 24.665 gross, 24.48518 after the 0.17982 fee.
    r3 = place(instance, intents("sell", 1.5), make_quote(market, 120, 120, 120.1))
    assert r3.order.fill_price == D("119.88")
    fill = Fill.objects.get(order=r3.order)
    assert (fill.fee, fill.realized_pnl) == (D("0.17982"), D("24.48518"))
    pos.refresh_from_db()
    assert (pos.qty, pos.cost_basis, pos.avg_price) == (D("1.5"), D("155.155"), D("103.43666667"))
    account.refresh_from_db()
    assert account.balance == D("9869.01987")

    # Sell the rest at 89.91 (bid 90): realises 134.865 - 155.155 - 0.134865 = -20.424865; closes.
    place(instance, intents("sell", 1.5), make_quote(market, 90, 90, 90.1))
    pos.refresh_from_db()
    assert pos.closed_at == NOW and pos.qty == 0 and pos.cost_basis == 0
    assert pos.realized_pnl == D("3.750005")  # -0.2002 - 0.11011 + 24.48518 - 20.424865
    account.refresh_from_db()
    # Cash moved only through fills: starting balance + realized P&L, to the last digit.
    assert account.balance == D("10003.750005") == D("10000") + pos.realized_pnl

    stats = instance_stats(instance=instance)
    assert stats["trades"] == 2 and stats["wins"] == 1 and stats["win_rate"] == 0.5
    assert D(stats["realized_pnl"]) == D("3.750005")


def test_unrealized_pnl_marks_at_last_price(instance, intents, market):
    from stratbox.trading.selectors import instance_unrealized_pnl

    place(instance, intents("buy", 3), make_quote(market, 100))
    assert instance_unrealized_pnl(instance_id=instance.pk, marks={market.pk: D("120")}) == D("60")
    assert instance_unrealized_pnl(instance_id=instance.pk, marks={market.pk: D("90.5")}) == D("-28.5")


def test_limit_buy_rests_until_the_price_crosses_then_fills_at_its_limit(
    instance, intents, paper_account, market
):
    account = _account_with_costs(paper_account)
    r = place(instance, intents("buy", 1, type="limit", price=95.0), make_quote(market, 100, 99.9, 100))
    assert r.status == "accepted" and r.order.filled_at is None
    account.refresh_from_db()
    assert account.balance == D("10000") and not Position.objects.exists()

    assert orders_mark_to_market(market_id=market.pk, quote=make_quote(market, 96, 95.9, 96), now=NOW) == []
    assert Order.objects.get(pk=r.order.pk).status == "accepted"

    later = NOW + timedelta(seconds=5)
    filled = orders_mark_to_market(market_id=market.pk, quote=make_quote(market, 94, 93.9, 94), now=later)
    assert [o.pk for o in filled] == [r.order.pk]
    order = Order.objects.get(pk=r.order.pk)
    # Resting orders fill at exactly their limit (no slippage), fee 10 bp of 95.
    assert (order.status, order.fill_price, order.fee, order.filled_at) == (
        "filled",
        D("95"),
        D("0.095"),
        later,
    )
    account.refresh_from_db()
    assert account.balance == D("9904.905")
    # A second crossing quote does not fill it again.
    assert orders_mark_to_market(market_id=market.pk, quote=make_quote(market, 90), now=later) == []
    assert Fill.objects.filter(order=order).count() == 1


def test_marketable_limit_fills_at_the_quote_but_never_beyond_the_limit(
    instance, intents, paper_account, market
):
    _account_with_costs(paper_account)
    quote = make_quote(market, 100, 99.9, 100)
    assert place(instance, intents("buy", 1, type="limit", price=101.0), quote).order.fill_price == D("100.1")
    assert place(instance, intents("buy", 1, type="limit", price=100.05), quote).order.fill_price == D(
        "100.05"
    )


def test_limit_sell_rests_then_fills_when_bid_reaches_it(instance, intents, market):
    place(instance, intents("buy", 2), make_quote(market, 100))
    r = place(instance, intents("sell", 2, type="limit", price=130.0), make_quote(market, 120))
    assert r.status == "accepted"
    orders_mark_to_market(market_id=market.pk, quote=make_quote(market, 131, 131, 131.1), now=NOW)
    pos = Position.objects.get(instance=instance)
    assert pos.closed_at is not None and pos.realized_pnl == D("60")


def test_observe_mode_fills_the_shadow_ledger_only(tenant, paper_account, market):
    from tests.trading.conftest import Intents, make_instance

    inst = make_instance(tenant, paper_account, market, mode="observe")
    intents = Intents(inst)
    r = place(inst, intents("buy", 2), make_quote(market, 100), mode="observe")
    assert r.status == "shadow" and r.order.is_shadow and r.order.fill_price == D("100")
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")
    shadow = Position.objects.get(instance=inst)
    assert shadow.is_shadow and shadow.qty == 2
    place(inst, intents("sell", 2), make_quote(market, 105), mode="observe")
    shadow.refresh_from_db()
    assert shadow.closed_at is not None and shadow.realized_pnl == D("10")
    assert instance_stats(instance=inst, shadow=True)["wins"] == 1
    assert instance_stats(instance=inst)["trades"] == 0
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")
