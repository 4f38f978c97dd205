"""Partial fills in paper trading, trade by trade with numbers by hand, and the same scenario run
through the backtester's broker (`sandbox.simbroker`) for parity.

The paper broker caps one order's fill per quote with the one fill model
(`fillmodel.available_size` / `capped_qty`): the quote's `ask_size` / `bid_size` when it carries
them, else the account's `max_volume_fraction` of the quote's volume (opt-in: NULL is whole fills).
Zero slippage and fees unless a test sets them (tests/trading/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from sandbox.simbroker import SimBroker
from stratbox.trading.brokers import paper_broker_params
from stratbox.trading.models import Fill, Order, Position
from stratbox.trading.services.orders import orders_mark_to_market
from tests.trading.conftest import NOW, make_quote, place

pytestmark = pytest.mark.django_db


@pytest.fixture
def partial_account(paper_account: Any) -> Any:
    """One order fills at most 10 % of a quote's volume."""
    paper_account.max_volume_fraction = D("0.1")
    paper_account.save(update_fields=["max_volume_fraction"])
    return paper_account


def quote(market: Any, c: float, v: float, o: float | None = None, h: float | None = None, lo: float | None = None) -> dict[str, Any]:  # fmt: skip
    """A replayed bar's quote (price = bid = ask = close) with its volume (and open/high/low)."""
    q = make_quote(market, c) | {"volume": v}
    if o is not None:
        q |= {"open": o, "high": h, "low": lo, "close": c}
    return q


def mtm(market: Any, q: dict[str, Any], seconds: int) -> list[Order]:
    return orders_mark_to_market(market_id=market.pk, quote=q, now=NOW + timedelta(seconds=seconds))


def fresh(order: Order) -> Order:
    return Order.objects.get(pk=order.pk)


def open_position(instance: Any) -> Position | None:
    return Position.objects.filter(instance=instance, closed_at__isnull=True).first()


def test_a_partial_fill_rests_and_completes_on_the_next_quote(instance, intents, market, partial_account):
    partial_account.fee_bps = D("10")
    partial_account.save(update_fields=["fee_bps"])
    r = place(instance, intents("buy", 5), quote(market, 100, v=30))
    # 10 % of 30 = 3 filled at 100 (fee 0.30), the other 2 rest
    assert (r.status, r.order.filled_qty, r.order.fill_price) == ("partially_filled", D(3), D(100))
    pos = open_position(instance)
    assert pos is not None and (pos.qty, pos.cost_basis) == (D(3), D(300))
    (done,) = mtm(market, quote(market, 102, v=30, o=101, h=102.5, lo=100.5), 60)
    order = fresh(done)
    # the rest, 2, at the next bar's open 101 (fee 0.202)
    assert (order.status, order.filled_qty, order.fill_price) == ("filled", D(5), D(101))
    assert [(f.qty, f.price, f.fee) for f in Fill.objects.filter(order=order).order_by("id")] == [
        (D(3), D(100), D("0.3")),
        (D(2), D(101), D("0.202")),
    ]
    pos = open_position(instance)
    assert pos is not None and (pos.qty, pos.cost_basis, pos.avg_price) == (D(5), D(502), D("100.4"))
    partial_account.refresh_from_db()
    assert partial_account.balance == D("100000") - D(502) - D("0.502")
    assert mtm(market, quote(market, 102, v=30, o=101, h=102.5, lo=100.5), 120) == []  # nothing left


def test_ioc_fills_what_is_on_offer_and_cancels_the_rest(instance, intents, market, partial_account):
    r = place(instance, intents("buy", 5, type="limit", price=101.0, tif="ioc"), quote(market, 100, v=30))
    assert (r.status, r.order.filled_qty, r.order.fill_price) == ("cancelled", D(3), D(100))
    assert mtm(market, quote(market, 100, v=30, o=100, h=100, lo=99), 60) == []
    assert fresh(r.order).filled_qty == D(3) and open_position(instance).qty == D(3)  # type: ignore[union-attr]


def test_fok_without_enough_size_fills_nothing(instance, intents, market, partial_account):
    short = place(instance, intents("buy", 5, type="limit", price=101.0, tif="fok"), quote(market, 100, v=30))
    assert (short.status, short.order.filled_qty) == ("cancelled", D(0))
    assert not Fill.objects.filter(instance=instance).exists() and open_position(instance) is None
    whole = place(instance, intents("buy", 5, type="limit", price=101.0, tif="fok"), quote(market, 100, v=50))
    assert (whole.status, whole.order.filled_qty) == ("filled", D(5))  # 10 % of 50 = 5: all of it


def test_quote_sizes_cap_fills_and_no_size_means_whole_fills(instance, intents, market, paper_account):
    assert paper_account.max_volume_fraction is None  # the default: no participation cap
    whole = place(instance, intents("buy", 5), quote(market, 100, v=0.5))
    assert (whole.status, whole.order.filled_qty) == ("filled", D(5))
    # a quote that shows the book's size at the touch: a buy takes at most the ask size
    capped = place(
        instance, intents("buy", 5), quote(market, 100, v=0.5) | {"ask_size": 1.5, "bid_size": 9.0}
    )
    assert (capped.status, capped.order.filled_qty) == ("partially_filled", D("1.5"))


def test_bracket_legs_follow_the_filled_quantity(instance, intents, market, partial_account):
    r = place(instance, intents("buy", 5, sl=95.0, tp=110.0), quote(market, 100, v=30))
    legs = {o.leg: o for o in Order.objects.filter(parent=r.order)}
    assert (legs["sl"].qty, legs["tp"].qty) == (D(3), D(3))  # sized to the 3 filled, not the 5 ordered
    mtm(market, quote(market, 100.5, v=30, o=100, h=101, lo=99), 60)  # the parent's other 2 fill
    assert fresh(r.order).status == "filled"
    assert (fresh(legs["sl"]).qty, fresh(legs["tp"]).qty) == (D(5), D(5))
    mtm(market, quote(market, 110, v=30, o=105, h=111, lo=104), 120)  # take-profit: 3 of 5 at 110
    tp, sl = fresh(legs["tp"]), fresh(legs["sl"])
    assert (tp.status, tp.filled_qty, sl.status, sl.qty) == ("partially_filled", D(3), "accepted", D(2))
    assert open_position(instance).qty == D(2)  # type: ignore[union-attr]
    mtm(market, quote(market, 110, v=30, o=109, h=112, lo=108), 180)  # the last 2
    tp, sl = fresh(legs["tp"]), fresh(legs["sl"])
    assert (tp.status, tp.filled_qty, sl.status) == ("filled", D(5), "cancelled")
    assert open_position(instance) is None
    partial_account.refresh_from_db()
    assert partial_account.balance == D("100050")  # 5 bought at 100, sold at 110


def test_a_shadow_order_fills_in_part_and_rests(instance, intents, market, partial_account):
    r = place(instance, intents("buy", 5), quote(market, 100, v=30), mode="observe")
    assert (r.status, r.order.filled_qty, r.order.filled_at) == ("shadow", D(3), None)
    mtm(market, quote(market, 101, v=30, o=101, h=101, lo=101), 60)
    order = fresh(r.order)
    assert (order.filled_qty, order.filled_at is not None) == (D(5), True)
    pos = Position.objects.get(instance=instance, is_shadow=True, closed_at__isnull=True)
    assert (pos.qty, pos.cost_basis) == (D(5), D(502))
    partial_account.refresh_from_db()
    assert partial_account.balance == D("100000")  # shadow fills never move cash


# (open, high, low, close, volume) bars: an entry with a bracket fills 3 + 2, its take-profit fills
# 3 + 1 and its stop-loss the last 1 (then the take-profit's rest is cancelled, OCO).
PARITY_BARS = [
    (100.0, 100.0, 100.0, 100.0, 30.0),
    (100.0, 101.0, 99.0, 100.5, 30.0),
    (105.0, 111.0, 104.0, 110.0, 30.0),
    (109.0, 112.0, 108.0, 111.0, 10.0),
    (108.0, 109.0, 94.0, 95.0, 30.0),
    (96.0, 97.0, 95.0, 96.0, 30.0),
]


def test_paper_and_backtest_fill_a_partial_scenario_alike(instance, intents, market, partial_account):
    partial_account.slippage_bps, partial_account.fee_bps = D("5"), D("10")
    partial_account.save(update_fields=["slippage_bps", "fee_bps"])
    params = paper_broker_params(partial_account) | {"starting_balance": 100_000.0}
    assert params["max_volume_fraction"] == 0.1  # a backtest of the instance inherits the cap
    sim = SimBroker(params)
    t0 = NOW.timestamp()
    for i, (o, h, lo, c, v) in enumerate(PARITY_BARS):
        q = quote(market, c, v=v, o=o, h=h, lo=lo)
        if i == 0:
            r = place(instance, intents("buy", 5, sl=95.0, tp=110.0), q)
            sim.new_order(side="buy", qty=5, sl=95.0, tp=110.0, ts=t0, price=c, volume=v)
        else:
            mtm(market, q, 60 * i)
            sim.on_bar(t0 + 60 * i, o, h, lo, c, v)
    paper = [(f.side, f.qty, f.price, f.fee) for f in Fill.objects.filter(instance=instance).order_by("id")]
    backtest = [("buy" if q > 0 else "sell", abs(q), p, fee) for _ts, q, p, fee in sim.fills]
    # by hand: 3 + 2 bought at 100.05 (close and open 100, +5 bp), 3 + 1 sold at the 110 limit,
    # 1 sold by the stop-loss at 95 - 5 bp = 94.9525
    assert [(s, q, p) for s, q, p, _ in paper] == [
        ("buy", D(3), D("100.05")),
        ("buy", D(2), D("100.05")),
        ("sell", D(3), D(110)),
        ("sell", D(1), D(110)),
        ("sell", D(1), D("94.9525")),
    ]
    assert len(backtest) == len(paper)
    for (ps, pq, pp, pf), (bs, bq, bp, bf) in zip(paper, backtest, strict=True):
        assert (ps, float(pq)) == (bs, pytest.approx(bq))
        assert float(pp) == pytest.approx(bp, abs=1e-9) and float(pf) == pytest.approx(bf, abs=1e-8)
    legs = {o.leg: o.status for o in Order.objects.filter(parent=r.order)}
    assert legs == {"sl": "filled", "tp": "cancelled"}
    assert {o["tag"]: o["status"] for o in sim.closed if o["tag"] in ("sl", "tp")} == legs
    assert open_position(instance) is None and sim.qty == 0
    partial_account.refresh_from_db()
    assert float(partial_account.balance) == pytest.approx(sim.cash, abs=1e-6)


def test_the_rest_of_a_partially_filled_limit_stays_reserved_by_the_gate(
    instance, intents, market, partial_account
):
    """total_capital 1,000: a limit buy of 8 at 100 fills 3 (10 % of 30) and rests for 5 more, which
    still reserve 500 next to the 300 deployed; a second order of 250 would make 1,050: denied."""
    r = place(instance, intents("buy", 8, type="limit", price=100.0), quote(market, 100, v=30))
    assert (r.status, r.order.filled_qty) == ("partially_filled", D(3))
    denied = place(instance, intents("buy", 2.5, type="limit", price=100.0), quote(market, 100, v=30))
    assert denied.deny_code == "MAX_POSITION_SIZE_EXCEEDED"  # 300 held + 500 resting + 250 > 1,000
    ok = place(instance, intents("buy", 2, type="limit", price=100.0), quote(market, 100, v=30))
    assert ok.deny_code is None and ok.status == "filled"  # 300 + 500 + 200 = 1,000: fits
