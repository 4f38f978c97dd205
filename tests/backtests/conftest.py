"""Fixtures of the backtest suites: a tick-style SMA crossover version, stored bars, the reference CSV."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
REFERENCE_CSV = DATA / "sma_reference.csv"

# The strategy tracks its own position in state, so it depends on nothing but ticks and fills.
SMA_SOURCE = """
from sandbox.sdk import Strategy


class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "fast": {"type": "int", "default": 3, "min": 1, "max": 500},
        "slow": {"type": "int", "default": 5, "min": 2, "max": 1000},
        "qty": {"type": "float", "default": 10.0, "min": 0.0001, "max": 1000000},
    }

    def init(self):
        return {"closes": [], "prev": None, "long": False}

    def on_tick(self, tick):
        st = self.state
        closes = st["closes"]
        closes.append(tick.close)
        slow = self.config["slow"]
        fast = self.config["fast"]
        if len(closes) > slow:
            closes.pop(0)
        if len(closes) < slow:
            return
        diff = sum(closes[-fast:]) / fast - sum(closes) / slow
        prev = st["prev"]
        st["prev"] = diff
        if prev is None:
            return
        if prev <= 0 < diff and not st["long"]:
            self.context.place_order("buy", self.config["qty"], tag="golden cross")
            st["long"] = True
        elif prev >= 0 > diff and st["long"]:
            self.context.place_order("sell", self.config["qty"], tag="death cross")
            st["long"] = False
"""

SMA_SCHEMA = {
    "fast": {"type": "int", "default": 3, "min": 1, "max": 500},
    "slow": {"type": "int", "default": 5, "min": 2, "max": 1000},
    "qty": {"type": "float", "default": 10.0, "min": 0.0001, "max": 1000000},
}

FAILING_SOURCE = """
from sandbox.sdk import Strategy


class Boom(Strategy):
    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        if self.state["n"] == 7:
            x = 1 / 0
"""


def make_version(tenant: Any, key: str, source: str, schema: dict[str, Any] | None = None) -> Any:
    from strategies_store.models import StrategyDefinition, StrategyVersion

    definition = StrategyDefinition.objects.create(tenant=tenant, key=key, name=key, style="tick")
    return StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        config_schema=schema or {},
    )


@pytest.fixture
def sma_version(tenant: Any) -> Any:
    return make_version(tenant, "sma-cross", SMA_SOURCE, SMA_SCHEMA)


@pytest.fixture
def other_sma_version(other_tenant: Any) -> Any:
    return make_version(other_tenant, "sma-cross", SMA_SOURCE, SMA_SCHEMA)


@pytest.fixture
def failing_version(tenant: Any) -> Any:
    return make_version(tenant, "boom", FAILING_SOURCE)


START = datetime(2024, 1, 1, tzinfo=UTC)


def store_bars(market: Any, closes: list[float], start: datetime = START, interval: int = 60) -> None:
    from datetime import timedelta

    from stratbox.markets.models import Bar

    rows = []
    prev = closes[0]
    for i, c in enumerate(closes):
        o = prev
        rows.append(
            Bar(
                market=market,
                ts=start + timedelta(seconds=interval * i),
                interval_seconds=interval,
                open=Decimal(str(o)),
                high=Decimal(str(max(o, c) + 0.5)),
                low=Decimal(str(min(o, c) - 0.5)),
                close=Decimal(str(c)),
                volume=Decimal("10"),
            )
        )
        prev = c
    Bar.objects.bulk_create(rows, batch_size=5000)


def reference_rows() -> list[dict[str, float]]:
    """The committed dataset read with nothing but str.split (independent of the code under test)."""
    lines = REFERENCE_CSV.read_text().strip().splitlines()[1:]
    keys = ("ts", "open", "high", "low", "close", "volume")
    return [dict(zip(keys, map(float, line.split(",")), strict=True)) for line in lines]


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def wait_finished(backtest_id: Any, timeout: float = 60.0) -> Any:
    from stratbox.backtests.models import Backtest

    def done() -> Any:
        bt = Backtest.objects.get(pk=backtest_id)
        return bt if bt.status in ("succeeded", "failed", "cancelled") else None

    return wait_for(done, timeout=timeout)
