"""Simulated history: valid, reproducible OHLC bars, stored once."""

from datetime import UTC, datetime

import pytest

from stratbox.markets.models import Bar
from stratbox.markets.services import bars_simulate

END = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_simulated_bars_are_valid_ohlc_on_the_interval_grid_and_stored_once(market):
    assert bars_simulate(market=market, count=500, interval_seconds=60, end=END) == 500
    bars = list(Bar.objects.filter(market=market).order_by("ts"))
    assert len(bars) == 500
    assert bars[-1].ts == END
    assert all((b.ts - bars[0].ts).total_seconds() == 60 * i for i, b in enumerate(bars))
    for prev, bar in zip(bars, bars[1:], strict=False):
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.low > 0
        assert bar.open == prev.close  # a continuous walk
    assert len({b.close for b in bars}) > 100  # it moves

    assert bars_simulate(market=market, count=500, interval_seconds=60, end=END) == 0
    assert Bar.objects.filter(market=market).count() == 500


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_history(market):
    bars_simulate(market=market, count=50, interval_seconds=60, end=END, seed=7)
    first = list(Bar.objects.filter(market=market).order_by("ts").values_list("close", flat=True))
    Bar.objects.filter(market=market).delete()
    bars_simulate(market=market, count=50, interval_seconds=60, end=END, seed=7)
    assert first == list(Bar.objects.filter(market=market).order_by("ts").values_list("close", flat=True))
