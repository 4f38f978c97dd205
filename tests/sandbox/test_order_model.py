"""The order model and the one fill model, trade by trade, with numbers worked out by hand.

``sandbox.simbroker.SimBroker`` is the backtester's broker; its prices and rules come from
``sandbox.fillmodel``, which the paper broker uses too (tests/trading/test_paper_orders.py). A bar
here is (ts, open, high, low, close).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox import fillmodel as fm
from sandbox.simbroker import SimBroker

T = 1_700_000_000.0  # 2023-11-14T22:13:20Z
FEE = 10.0  # bps


def broker(**params: object) -> SimBroker:
    base: dict[str, object] = {"starting_balance": 10_000.0, "fee_bps": FEE, "slippage_bps": 0.0}
    base.update(params)
    return SimBroker(base)


def bar(b: SimBroker, i: int, o: float, h: float, lo: float, c: float, v: float | None = None) -> None:
    b.on_bar(T + 60 * i, o, h, lo, c, v)


def test_market_at_signal_close_with_slippage_and_fee() -> None:
    b = broker(slippage_bps=5.0)
    order = b.new_order(side="buy", qty=10, ts=T, price=100.0)
    # 100 * 1.0005 = 100.05; fee 10 * 100.05 * 0.001 = 1.0005; cash 10000 - 1000.5 - 1.0005
    assert order["status"] == "filled" and order["fill_price"] == pytest.approx(100.05)
    assert b.cash == pytest.approx(8998.4995)
    b.new_order(side="sell", qty=10, ts=T + 60, price=110.0)
    # sell at 110 * 0.9995 = 109.945; fee 1.09945; P&L (109.945 - 100.05) * 10 - 1.09945 = 97.85055
    assert b.trades[0]["pnl"] == pytest.approx(97.85055)
    assert b.cash == pytest.approx(8998.4995 + 1099.45 - 1.09945)
    assert b.qty == 0 and b.pending == []


def test_market_at_next_open() -> None:
    b = broker(fill_timing="next_open")
    order = b.new_order(side="buy", qty=10, ts=T, price=100.0)
    assert order["status"] == "accepted" and b.qty == 0
    bar(b, 1, 101.0, 103.0, 100.5, 102.0)
    # fills at the next bar's open 101: fee 1.01
    assert order["status"] == "filled" and order["fill_price"] == 101.0
    assert b.cash == pytest.approx(10_000 - 1010 - 1.01)


def test_limit_touched_intrabar_and_gapped_through() -> None:
    b = broker()
    touched = b.new_order(side="buy", qty=1, type="limit", limit=98.0, ts=T, price=100.0)
    gapped = b.new_order(side="buy", qty=1, type="limit", limit=96.0, ts=T, price=100.0)
    assert touched["status"] == gapped["status"] == "accepted"
    bar(b, 1, 99.0, 99.5, 97.5, 99.0)  # low 97.5 touches 98, not 96
    assert touched["status"] == "filled" and touched["fill_price"] == 98.0
    assert gapped["status"] == "accepted"
    bar(b, 2, 95.0, 95.5, 94.0, 95.0)  # opens below 96: fills at the better open
    assert gapped["fill_price"] == 95.0
    assert b.qty == 2 and b.avg_price == pytest.approx(96.5)


def test_limit_marketable_on_arrival_never_beyond_its_limit() -> None:
    b = broker(slippage_bps=100.0)
    order = b.new_order(side="buy", qty=1, type="limit", limit=100.5, ts=T, price=100.0)
    # 100 * 1.01 = 101 would be beyond the limit: capped at 100.5
    assert order["fill_price"] == 100.5


def test_stop_triggers_intrabar_and_on_a_gap() -> None:
    b = broker(slippage_bps=10.0)
    stop = b.new_order(side="buy", qty=1, type="stop", stop=105.0, ts=T, price=100.0)
    assert stop["status"] == "accepted"
    bar(b, 1, 101.0, 104.9, 100.0, 104.0)  # high below the stop: nothing
    assert stop["status"] == "accepted"
    bar(b, 2, 104.0, 106.0, 103.0, 105.5)  # high crosses 105: fills at 105 * 1.001
    assert stop["fill_price"] == pytest.approx(105.105)
    sell_stop = b.new_order(side="sell", qty=1, type="stop", stop=100.0, ts=T + 180, price=105.0)
    bar(b, 4, 98.0, 99.0, 97.0, 98.5)  # gaps below the stop: fills at the open 98 * 0.999
    assert sell_stop["fill_price"] == pytest.approx(97.902)


def test_stop_limit_triggered_intrabar_rests_as_a_limit() -> None:
    b = broker()
    order = b.new_order(side="buy", qty=1, type="stop_limit", stop=105.0, limit=104.0, ts=T, price=100.0)
    bar(b, 1, 101.0, 106.0, 100.0, 105.5)  # triggered at 105, but 105 is beyond the 104 limit
    assert order["status"] == "accepted" and order["triggered"] is True
    bar(b, 2, 105.0, 105.5, 103.5, 104.5)  # now a limit: the low 103.5 touches 104
    assert order["status"] == "filled" and order["fill_price"] == 104.0


def test_bracket_take_profit_fills_and_cancels_the_stop_loss() -> None:
    b = broker()
    parent = b.new_order(side="buy", qty=10, ts=T, price=100.0, sl=95.0, tp="10%")
    legs = {o["leg"]: o for o in b.pending}
    assert parent["status"] == "filled"
    assert legs["sl"]["type"] == "stop" and legs["sl"]["stop"] == 95.0 and legs["sl"]["side"] == "sell"
    assert legs["tp"]["type"] == "limit" and legs["tp"]["limit"] == pytest.approx(110.0)
    assert legs["sl"]["reduce_only"] and legs["tp"]["qty"] == 10
    bar(b, 1, 104.0, 111.0, 103.0, 108.0)
    assert legs["tp"]["status"] == "filled" and legs["sl"]["status"] == "cancelled"
    # entry fee 1.0, exit 10 * 110 = 1100, fee 1.1; trade P&L (110 - 100) * 10 - 1.1 = 98.9
    assert b.trades[0]["pnl"] == pytest.approx(98.9) and b.trades[0]["reason"] == "tp"
    assert b.cash == pytest.approx(10_000 - 1000 - 1.0 + 1100 - 1.1)
    assert b.pending == []


def test_bracket_both_legs_touched_on_one_bar_stop_loss_wins() -> None:
    b = broker()
    b.new_order(side="buy", qty=10, ts=T, price=100.0, sl="5%", tp=110.0)
    bar(b, 1, 100.0, 111.0, 94.0, 100.0)  # both 95 and 110 inside the range: the worse comes first
    assert b.trades[0]["reason"] == "sl" and b.trades[0]["exit_price"] == pytest.approx(95.0)
    assert [o["status"] for o in b.closed if o.get("leg") == "tp"] == ["cancelled"]


def test_bracket_legs_die_when_another_exit_closes_the_position() -> None:
    b = broker()
    b.new_order(side="buy", qty=10, ts=T, price=100.0, sl=95.0, tp=110.0)
    close = b.close_position(T + 60, 102.0, "exit")
    assert close is not None and close["status"] == "filled" and b.qty == 0
    assert b.pending == []  # the take-profit can no longer open a short later
    bar(b, 2, 111.0, 112.0, 110.0, 111.0)
    assert b.qty == 0 and len(b.trades) == 1


def test_cancel_a_resting_limit() -> None:
    b = broker()
    order = b.new_order(side="buy", qty=1, type="limit", limit=90.0, ts=T, price=100.0)
    assert b.cancel(order["client_order_id"], T + 60) is True
    assert order["status"] == "cancelled" and b.pending == []
    assert b.cancel(order["client_order_id"], T + 120) is False
    bar(b, 3, 89.0, 90.0, 88.0, 89.0)
    assert b.qty == 0


def test_ioc_fok_and_partial_fills_against_bar_volume() -> None:
    b = broker(max_volume_fraction=0.1)
    ioc = b.new_order(side="buy", qty=5, type="limit", limit=90.0, tif="ioc", ts=T, price=100.0)
    assert ioc["status"] == "cancelled" and b.qty == 0  # not marketable at once
    b2 = broker(max_volume_fraction=0.1, fill_timing="next_open")
    part = b2.new_order(side="buy", qty=5, type="limit", limit=101.0, tif="ioc", ts=T, price=100.0)
    fok = b2.new_order(side="buy", qty=5, type="limit", limit=101.0, tif="fok", ts=T, price=100.0)
    gtc = b2.new_order(side="buy", qty=5, type="limit", limit=101.0, ts=T, price=100.0)
    bar(b2, 1, 100.0, 100.5, 99.5, 100.0, v=30.0)  # 10 % of 30 = 3 per order
    assert part["filled_qty"] == 3 and part["status"] == "cancelled"
    assert fok["filled_qty"] == 0 and fok["status"] == "cancelled"
    assert gtc["filled_qty"] == 3 and gtc["status"] == "partially_filled"
    bar(b2, 2, 100.0, 100.5, 99.5, 100.0, v=30.0)
    assert gtc["filled_qty"] == 5 and gtc["status"] == "filled"
    assert b2.qty == 8


def test_day_orders_expire_at_midnight_and_expire_at_is_honoured() -> None:
    b = broker()
    day = b.new_order(side="buy", qty=1, type="limit", limit=90.0, tif="day", ts=T, price=100.0)
    dated = b.new_order(side="buy", qty=1, type="limit", limit=90.0, expire_at=T + 120, ts=T, price=100.0)
    assert day["expire_at"] == 1_700_006_400  # next UTC midnight
    bar(b, 2, 95.0, 96.0, 94.0, 95.0)
    assert dated["status"] == "expired" and day["status"] == "accepted"
    b.on_bar(1_700_006_400, 89.0, 89.0, 89.0, 89.0)
    assert day["status"] == "expired" and b.qty == 0


def test_margin_check_denies_what_the_account_cannot_pay_for() -> None:
    b = broker()
    denied = b.new_order(side="buy", qty=100, ts=T, price=100.0)  # 10,000 + fee 10 > 10,000
    assert denied["status"] == "rejected" and denied["reason"] == "INSUFFICIENT_BALANCE"
    assert b.denials[0]["code"] == "INSUFFICIENT_BALANCE" and b.denial_counts == {"INSUFFICIENT_BALANCE": 1}
    levered = broker(leverage=2.0)
    assert levered.new_order(side="buy", qty=100, ts=T, price=100.0)["status"] == "filled"
    # limits that pile up: each fits alone, both together do not; the second is denied at its fill
    p = broker()
    first = p.new_order(side="buy", qty=60, type="limit", limit=99.0, ts=T, price=100.0)
    second = p.new_order(side="buy", qty=60, type="limit", limit=99.0, ts=T, price=100.0)
    bar(p, 1, 99.5, 99.5, 98.0, 99.0)
    assert first["status"] == "filled" and second["status"] == "rejected"
    assert second["reason"] == "INSUFFICIENT_BALANCE" and p.qty == 60


def test_shorting_refused_or_allowed_per_account() -> None:
    no_short = broker(allow_short=False)
    order = no_short.new_order(side="sell", qty=1, ts=T, price=100.0)
    assert order["status"] == "rejected" and order["reason"] == "SHORT_NOT_ALLOWED"
    short = broker(allow_short=True)
    short.new_order(side="sell", qty=10, ts=T, price=100.0)
    assert short.qty == -10
    short.new_order(side="buy", qty=10, ts=T + 60, price=90.0)
    # (100 - 90) * 10 - exit fee 0.9 = 99.1; cash 10000 + 1000 - 1 - 900 - 0.9
    assert short.trades[0]["side"] == "short" and short.trades[0]["pnl"] == pytest.approx(99.1)
    assert short.cash == pytest.approx(10_098.1)


def test_reduce_only_never_opens_or_grows() -> None:
    b = broker()
    assert b.new_order(side="sell", qty=1, reduce_only=True, ts=T, price=100.0)["status"] == "cancelled"
    b.new_order(side="buy", qty=3, ts=T, price=100.0)
    cut = b.new_order(side="sell", qty=5, reduce_only=True, ts=T + 60, price=100.0)
    assert cut["filled_qty"] == 3 and b.qty == 0


def test_instance_gate_in_the_backtest_lists_denials_with_codes() -> None:
    b = broker(limits={"capital_per_trade": 500.0, "max_position_size": 800.0, "total_capital": 5000.0})
    big = b.new_order(side="buy", qty=6, ts=T, price=100.0)
    assert big["reason"] == "CAPITAL_PER_TRADE_EXCEEDED"
    assert b.new_order(side="buy", qty=5, ts=T, price=100.0)["status"] == "filled"
    more = b.new_order(side="buy", qty=4, ts=T, price=100.0)
    assert more["reason"] == "MAX_POSITION_SIZE_EXCEEDED"
    assert [d["code"] for d in b.denials] == ["CAPITAL_PER_TRADE_EXCEEDED", "MAX_POSITION_SIZE_EXCEEDED"]


@pytest.mark.parametrize(("outcome", "pnl"), [(1.0, 60.0), (0.0, -40.0)])
def test_binary_contract_bought_and_settled(outcome: float, pnl: float) -> None:
    b = broker(kind="binary", tick_size=0.01, fee_bps=0.0, starting_balance=1000.0)
    off_tick = b.new_order(side="buy", qty=100, type="limit", limit=0.405, ts=T, price=0.40)
    assert off_tick["reason"] == "OFF_TICK"
    assert b.new_order(side="buy", qty=100, type="limit", limit=1.2, ts=T, price=0.40)["reason"] == (
        "INVALID_PRICE"
    )
    b.new_order(side="buy", qty=100, type="limit", limit=0.41, ts=T, price=0.40)
    assert b.cash == pytest.approx(960.0)  # cost = price x size = 0.40 x 100
    b.settle(outcome, T + 3600)
    assert b.qty == 0 and b.trades[-1]["reason"] == "settlement"
    assert b.trades[-1]["pnl"] == pytest.approx(pnl) and b.cash == pytest.approx(1000.0 + pnl)


def test_fill_model_works_in_decimals_too() -> None:
    """The paper broker's numbers are Decimals: the same functions, exact results."""
    price, triggered = fm.on_bar(
        "buy",
        "stop",
        None,
        Decimal("105"),
        False,
        Decimal("101"),
        Decimal("106"),
        Decimal("100"),
        Decimal("0.001"),
    )
    assert triggered and price == Decimal("105.105")
    assert fm.fee_for(Decimal("1000"), Decimal("0.001"), Decimal("0.5")) == Decimal("1.5")
    assert fm.margin_problem(Decimal(0), Decimal(10), Decimal(100), Decimal(1), Decimal(1000), 1, True) == (
        "INSUFFICIENT_BALANCE"
    )
    assert fm.entry_notional("kelly", Decimal(500), Decimal(1000), Decimal("0.7"), Decimal(10)) == Decimal(
        "400.0"
    )


def test_partial_fill_rules_shared_with_paper_trading() -> None:
    assert fm.available_size(30.0, 0.1) == pytest.approx(3.0)
    assert fm.available_size(30.0, 0.1, 1.5) == 1.5  # a quote's size at the touch wins
    assert fm.available_size(30.0, None) is None  # no cap: a whole fill
    assert fm.capped_qty(5, None, "gtc") == 5 and fm.capped_qty(5, 3, "gtc") == 3
    assert fm.capped_qty(5, 3, "ioc") == 3 and fm.capped_qty(5, 0, "ioc") == 0
    assert fm.capped_qty(5, 3, "fok") == 0 and fm.capped_qty(5, 5, "fok") == 5  # all or nothing
    # on arrival, against the signal bar's volume: 10 % of 30 = 3 of 5
    b = broker(max_volume_fraction=0.1)
    gtc = b.new_order(side="buy", qty=5, ts=T, price=100.0, volume=30.0)
    ioc = b.new_order(side="buy", qty=5, tif="ioc", ts=T, price=100.0, volume=30.0)
    fok = b.new_order(side="buy", qty=5, tif="fok", ts=T, price=100.0, volume=30.0)
    assert (gtc["status"], gtc["filled_qty"]) == ("partially_filled", pytest.approx(3.0))
    assert (ioc["status"], ioc["filled_qty"]) == ("cancelled", pytest.approx(3.0))
    assert (fok["status"], fok["filled_qty"]) == ("cancelled", 0.0)
    bar(b, 1, 101.0, 101.0, 101.0, 101.0, v=30.0)  # the GTC's other 2 at the next open
    assert (gtc["status"], b.qty) == ("filled", pytest.approx(8.0))


def test_one_price_estimate_for_the_gate_and_for_sizing() -> None:
    slip = 0.001  # 10 bps
    assert fm.price_estimate("buy", "market", None, None, 100.0, slip) == pytest.approx(100.1)
    assert fm.price_estimate("sell", "market", None, None, 100.0, slip) == pytest.approx(99.9)
    assert fm.price_estimate("buy", "limit", 101.0, None, 100.0, slip) == pytest.approx(100.1)  # marketable
    assert fm.price_estimate("buy", "limit", 100.05, None, 100.0, slip) == 100.05  # never beyond its limit
    assert fm.price_estimate("buy", "limit", 99.0, None, 100.0, slip) == 99.0  # rests at its limit
    assert fm.price_estimate("buy", "stop", None, 105.0, 100.0, slip) == pytest.approx(105.105)
    assert fm.price_estimate("buy", "stop_limit", 106.0, 105.0, 100.0, slip) == 106.0
    # 1,001 at 100.10 is exactly 10 (lot 0.001); 1,000 at 100.10 is 9.99000.. floored to 9.990
    assert fm.entry_qty(1001.0, 100.0 * 1.001, 0.001) == pytest.approx(10.0)
    assert fm.entry_qty(Decimal("1001"), Decimal("100.1"), Decimal("0.001")) == Decimal("10.000")
    assert fm.entry_qty(Decimal("1000"), Decimal("100.1"), Decimal("0.001")) == Decimal("9.990")
    assert fm.entry_qty(1000.0, 0.0, 0.001) == 0.0
