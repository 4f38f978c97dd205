"""``context.history`` in real engine ticks: the recent quotes of the instance's market, served by
the engine from Redis -- only to strategies whose code reads history."""

from __future__ import annotations

import time

from stratbox.engine import runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.batch import tick_run_batch
from stratbox.engine.ticks.inputs import tick_snapshot, wants_history
from stratbox.engine.ticks.tick import tick_run
from stratbox.markets.quotes import market_bars_recent, quote_history, quote_set
from tests.engine.conftest import make_instance, make_version, set_quote

HISTORY = """
from sandbox.sdk import Strategy
from sandbox.indicators import SMA


class Recent(Strategy):
    def init(self):
        return {}

    def on_tick(self, tick):
        closes = self.context.history(3)
        self.state["closes"] = closes
        self.state["highs"] = self.context.history(2, "high")
        self.state["sma"] = SMA(3).extend(closes)
"""


def _rt(inst):
    return runtime.rt_get(str(inst.pk))


def _quotes(market, prices):
    for price in prices:
        set_quote(market, price)


def test_a_tick_reads_the_markets_recent_quotes(tenant, paper_account, market) -> None:
    inst = make_instance(make_version(tenant, HISTORY), paper_account, market, mode="observe")
    _quotes(market, [100.0, 101.0, 103.0, 104.0])
    reconcile()
    slot = _rt(inst)["next_due_at"]
    assert tick_run(inst.pk, slot).status == "ok"
    state = _rt(inst)["state"]
    assert state["closes"] == [101.0, 103.0, 104.0]
    assert state["highs"] == [103.0, 104.0]  # a live quote is a bar with high = its price
    assert state["sma"] == (101.0 + 103.0 + 104.0) / 3


def test_a_batched_tick_reads_replayed_bars(tenant, paper_account, market) -> None:
    inst = make_instance(make_version(tenant, HISTORY), paper_account, market, mode="observe")
    now = time.time()
    for i, (o, h, lo, c) in enumerate([(10.0, 12.0, 9.0, 11.0), (11.0, 15.0, 10.5, 14.0)]):
        quote_set(
            market.id,
            {
                "market": market.code,
                "price": c,
                "bid": c,
                "ask": c,
                "volume": 5.0,
                "ts": now + i,
                "bar_ts": 1_700_000_000.0 + 60 * i,
                "open": o,
                "high": h,
                "low": lo,
                "close": c,
            },
        )
    bars = market_bars_recent([market.id], 10)[market.id]
    assert bars == {
        "ts": [1_700_000_000.0, 1_700_000_060.0],
        "open": [10.0, 11.0],
        "high": [12.0, 15.0],
        "low": [9.0, 10.5],
        "close": [11.0, 14.0],
        "volume": [5.0, 5.0],
    }
    assert [p for _, p in quote_history(market.id)] == [11.0, 14.0]  # the dashboard's candles still read
    reconcile()
    slot = _rt(inst)["next_due_at"]
    tick_run_batch([(str(inst.pk), slot)])
    state = _rt(inst)["state"]
    assert state["closes"] == [11.0, 14.0] and state["highs"] == [12.0, 15.0]


def test_a_strategy_that_never_asks_gets_no_bars(instance_factory, market, quote) -> None:
    inst = instance_factory(mode="observe")
    history_inst = make_instance(make_version(inst.tenant, HISTORY), inst.account, market, mode="observe")
    assert not wants_history(inst) and wants_history(history_inst)
    assert "history" not in tick_snapshot(inst, quote, "observe", "p-1")
    assert tick_snapshot(history_inst, quote, "observe", "p-2")["history"]["close"] == [quote["price"]]
