"""Signal-style entries are sized by one function in the engine (paper and live) and in backtests.

The engine's `entry_notional` / `entry_qty` (Decimals) and the backtester's `_signal_size` (floats,
inside the host) both call `sandbox.fillmodel.entry_notional` and `entry_qty`, at the price the
risk gate values a market order at (`fillmodel.price_estimate`: the quote's side with slippage);
here the quantities they give for the same instance, confidence and price are compared, for every
sizing method, against numbers by hand — and an entry sized to exactly capital_per_trade passes the
gate in both.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from sandbox.backtest import _signal_size
from sandbox.simbroker import SimBroker
from stratbox.backtests.fillmodel import broker_params_for
from stratbox.engine.ticks.sizing import entry_notional, entry_qty, signal_intents
from tests.trading.conftest import make_instance, make_quote, place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("method", "config", "confidence", "price", "qty"),
    [
        # fixed: capital_per_trade 500 at 37.5 -> 13.333.. floored to the 0.001 lot = 13.333
        ("fixed", {}, 1.0, 37.5, 13.333),
        # kelly: (2 x 0.7 - 1) x 1,000 = 400 (below 500) at 40 -> 10
        ("kelly", {}, 0.7, 40.0, 10.0),
        # kelly below even odds: nothing
        ("kelly", {}, 0.4, 40.0, 0.0),
        # percent_capital 30 % of 1,000 = 300 at 7 -> 42.857
        ("percent_capital", {"percent_capital": 30}, 1.0, 7.0, 42.857),
    ],
)
def test_engine_and_backtest_size_an_entry_alike(
    tenant: Any, paper_account: Any, market: Any, method: str, config: dict[str, Any], confidence: float,
    price: float, qty: float,
) -> None:  # fmt: skip
    market.lot_size = D("0.001")
    market.save(update_fields=["lot_size"])
    paper_account.slippage_bps = D(0)  # sized at the price itself (slippage: the test below)
    paper_account.save(update_fields=["slippage_bps"])
    instance = make_instance(
        tenant,
        paper_account,
        market,
        sizing_method=method,
        config=config,
        total_capital=D("1000"),
        capital_per_trade=D("500"),
    )
    quote = {"ask": price, "bid": price, "price": price}
    engine_qty = entry_qty(instance, entry_notional(instance, confidence, config), "buy", quote)
    backtest_qty = _signal_size(broker_params_for(capital=D("1000"), instance=instance), confidence, price)
    assert engine_qty == D(repr(qty)).quantize(D("0.001"))
    assert backtest_qty == pytest.approx(qty, abs=1e-9)


def test_an_entry_sized_to_exactly_capital_per_trade_passes_with_slippage(
    tenant: Any, paper_account: Any, market: Any
) -> None:
    """Slippage 10 bps, capital_per_trade 1,001, a long entry at 100: the gate values a market buy at
    100 x 1.001 = 100.10, so the entry is sized 1,001 / 100.10 = 10 (lot 0.001), notional exactly
    1,001 — accepted in the engine and in the backtest alike (sizing at the bare ask gave 10.01,
    10.01 x 100.10 = 1,002.001 > 1,001: denied CAPITAL_PER_TRADE_EXCEEDED)."""
    market.lot_size = D("0.001")
    market.save(update_fields=["lot_size"])
    paper_account.slippage_bps, paper_account.fee_bps = D("10"), D(0)
    paper_account.save(update_fields=["slippage_bps", "fee_bps"])
    cap = D("1001")
    instance = make_instance(
        tenant, paper_account, market, capital_per_trade=cap, total_capital=D(5000), max_position_size=D(5000)
    )
    entry = {"market": market.code, "side": "long", "reason": "r", "confidence": 1.0}
    (intent,), skipped = signal_intents(
        instance,
        {"entries": [entry], "exits": []},
        {"order_id_prefix": f"{instance.pk}-7", "positions": []},
        make_quote(market, 100),
    )
    assert skipped == [] and intent["qty"] == 10.0
    placed = place(instance, intent, make_quote(market, 100))
    assert (placed.status, placed.deny_code, placed.order.fill_price) == ("filled", None, D("100.1"))
    assert placed.order.qty * placed.order.fill_price == cap

    params = broker_params_for(capital=D(5000), instance=instance)
    assert (params["slippage_bps"], params["limits"]["capital_per_trade"]) == (10.0, 1001.0)
    qty = _signal_size(params, 1.0, 100.0, "buy")
    assert qty == 10.0 == intent["qty"]
    order = SimBroker(params).new_order(side="buy", qty=qty, ts=1_700_000_000.0, price=100.0)
    assert (order["status"], order["reason"]) == ("filled", None)
    assert order["fill_price"] == pytest.approx(100.1)


def test_signal_entries_carry_their_bracket_legs_into_the_order(
    tenant: Any, paper_account: Any, market: Any
) -> None:
    paper_account.slippage_bps = paper_account.fee_bps = D(0)
    paper_account.save(update_fields=["slippage_bps", "fee_bps"])
    instance = make_instance(tenant, paper_account, market, capital_per_trade=D("500"))
    entry = {"market": market.code, "side": "long", "reason": "r", "confidence": 1.0, "sl": "2%", "tp": 110.0}
    intents, skipped = signal_intents(
        instance,
        {"entries": [entry], "exits": []},
        {"order_id_prefix": f"{instance.pk}-7", "positions": []},
        {"ask": 100.0, "bid": 100.0, "price": 100.0},
    )
    assert skipped == []
    (intent,) = intents
    assert (intent["sl"], intent["tp"], intent["qty"]) == ("2%", 110.0, 5.0)
    # ... which the gate accepts as an order with a bracket (legs attach once it fills)
    placed = place(instance, intent, make_quote(market, 100))
    assert placed.status == "filled", placed
    legs = {o.leg: o for o in placed.order.legs.all()}
    assert (legs["sl"].stop_price, legs["tp"].limit_price) == (D("98"), D("110"))
