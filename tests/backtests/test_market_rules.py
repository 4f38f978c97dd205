"""A backtest applies its market's rules as paper trading does: trading hours (sessions sent per
chunk) and the settlement of a resolved binary contract (the same P&L as paper's
`market_resolve`), run end to end by the real runner in a real sandbox host."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stratbox.backtests.models import BacktestTrade
from stratbox.backtests.runner import backtest_run
from stratbox.backtests.services import BarsSpec, backtest_create
from stratbox.markets.models import Bar, Market
from stratbox.trading.models import Account, Position
from stratbox.trading.services.settlement import market_resolve
from strategies_store.models import StrategyVersion
from tests.backtests.conftest import make_version
from tests.trading.conftest import Intents, make_instance, make_quote, place

pytestmark = pytest.mark.django_db(transaction=True)  # the runner reads bars on a thread

BUY_ONCE = """
from sandbox.sdk import Strategy


class BuyOnce(Strategy):
    def init(self):
        return {"done": False}

    def on_tick(self, tick):
        if not self.state["done"]:
            self.context.place_order("buy", 100)
            self.state["done"] = True
"""

EVERY_BAR = """
from sandbox.sdk import Strategy


class EveryBar(Strategy):
    def init(self):
        return {}

    def on_tick(self, tick):
        self.context.place_order("buy", 1)
"""


def store(market: Market, start: datetime, closes: list[float]) -> None:
    Bar.objects.bulk_create(
        Bar(
            market=market,
            ts=start + timedelta(minutes=i),
            interval_seconds=60,
            open=Decimal(str(c)),
            high=Decimal(str(c)),
            low=Decimal(str(c)),
            close=Decimal(str(c)),
            volume=Decimal("1000"),
        )
        for i, c in enumerate(closes)
    )


def run(tenant: Any, market: Market, start: datetime, bars: int, **kwargs: Any) -> Any:
    bt = backtest_create(
        tenant=tenant,
        actor=None,
        bars=BarsSpec(market=market, start=start, end=start + timedelta(minutes=bars), interval_seconds=60),
        chunk_bars=2,  # the rules cross chunk edges
        **kwargs,
    )
    assert backtest_run(str(bt.pk)) == "succeeded"
    bt.refresh_from_db()
    return bt


def test_orders_outside_the_session_are_denied_in_a_backtest(tenant: Any) -> None:
    ny = {"tz": "America/New_York", "open": "09:30", "close": "16:00", "days": [0, 1, 2, 3, 4]}
    equity = Market.objects.create(venue="ALPACA", symbol="MSFT", trading_hours=ny)
    start = datetime(2026, 3, 9, 19, 57, tzinfo=UTC)  # Monday 15:57 EDT: the close is 20:00 UTC
    store(equity, start, [100.0] * 5)
    version = make_version(tenant, "every-bar", EVERY_BAR)
    bt = run(tenant, equity, start, 5, version=version, fee_bps=0.0, slippage_bps=0.0)
    # 19:57, 19:58, 19:59 fill; 20:00 and 20:01 (16:00 EDT on) are denied with the next open.
    assert bt.metrics["fills"] == 3
    assert bt.metrics["denial_counts"] == {"MARKET_CLOSED": 2}
    assert [d["ts"] for d in bt.metrics["denials"]] == [
        (start + timedelta(minutes=m)).timestamp() for m in (3, 4)
    ]
    assert all("opens next at 2026-03-10 13:30 UTC" in d["message"] for d in bt.metrics["denials"])
    assert bt.metrics["trading_hours"] == "09:30-16:00 America/New_York Mon,Tue,Wed,Thu,Fri"


@pytest.mark.parametrize(
    ("value", "resolved_after", "bars_run", "pnl"),
    [
        # YES between the third and fourth bar: the run stops there, the position settles at 1.
        (1, timedelta(seconds=150), 3, Decimal("59.96")),
        # NO after the last bar but inside the range: settled at 0 on the last bar.
        (0, timedelta(seconds=330), 6, Decimal("-40.04")),
    ],
)
def test_a_resolved_binary_market_settles_in_the_backtest_as_in_paper(
    tenant: Any, value: int, resolved_after: timedelta, bars_run: int, pnl: Decimal
) -> None:
    binary = Market.objects.create(
        venue="KALSHI", symbol=f"RAIN-{value}-YES", kind="binary", outcome="YES", tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
    )  # fmt: skip
    start = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    store(binary, start, [0.40, 0.45, 0.50, 0.55, 0.60, 0.65])
    account = Account.objects.create(tenant=tenant, name="Paper", kind="paper", fee_bps=10, slippage_bps=0)
    inst = make_instance(tenant, account, binary)
    StrategyVersion.objects.filter(pk=inst.version_id).update(source=BUY_ONCE)
    inst.refresh_from_db()

    # Paper: buy 100 YES at 0.40 (cost 40.00, fee 10 bps = 0.04), then the market resolves.
    bought = place(inst, Intents(inst)("buy", 100), make_quote(binary, 0.40), now=start)
    assert (bought.status, bought.order.fill_price, bought.order.fee) == (
        "filled",
        Decimal("0.4"),
        Decimal("0.04"),
    )
    assert market_resolve(market=binary, value=value, now=start + resolved_after) == 1
    paper_pnl = Position.objects.get(instance=inst).realized_pnl
    assert paper_pnl == pnl  # YES: 100 x (1 - 0.40) - 0.04; NO: 100 x (0 - 0.40) - 0.04

    # The backtest of the same instance over the market's bars settles the same position.
    bt = run(tenant, binary, start, 6, instance=inst)
    assert bt.bars_total == bars_run
    assert bt.pnl == pnl == paper_pnl
    assert bt.final_equity == Decimal("1000.00") + pnl  # the instance's capital, settlement included
    (trade,) = BacktestTrade.objects.filter(backtest=bt)
    assert (trade.side, trade.qty, trade.entry_price, trade.exit_price) == ("long", 100, 0.40, value)
    assert (
        trade.reason == "settlement"
        and trade.exit_ts == (start + timedelta(minutes=bars_run - 1)).timestamp()
    )
    assert trade.fees == pytest.approx(0.04) and trade.pnl == pytest.approx(float(pnl))
    assert bt.metrics["settlement"] == {"resolved_ts": (start + resolved_after).timestamp(), "value": value}
    assert bt.num_trades == 1 and bt.metrics["open_trades"] == 0
