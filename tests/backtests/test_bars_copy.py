"""Stored bars read by the chunked binary COPY reader: every bar, in order, exactly as stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.backtests.conftest import START, store_bars

pytestmark = pytest.mark.django_db


def _closes(n: int) -> list[float]:
    return [100.0 + (i % 97) * 0.25 - (i % 13) * 0.5 for i in range(n)]


@pytest.mark.parametrize("chunk", [1, 7, 1000, 5000])
def test_chunks_hold_every_stored_bar_in_order(market: Any, chunk: int) -> None:
    from stratbox.backtests.bars import market_bars_chunks

    closes = _closes(2345)  # far more rows than libpq buffers at once: the drain path runs
    store_bars(market, closes)
    end = START + timedelta(seconds=60 * len(closes))
    parts = list(
        market_bars_chunks(market_id=market.pk, interval_seconds=60, start=START, end=end, chunk=chunk)
    )
    full, rest = divmod(len(closes), chunk)
    assert [len(p) for p in parts] == [chunk] * full + ([rest] if rest else [])
    got_close = [c for p in parts for c in p.close.tolist()]
    got_ts = [t for p in parts for t in p.ts.tolist()]
    assert got_close == closes
    assert got_ts == [START.timestamp() + 60 * i for i in range(len(closes))]
    first = parts[0]
    assert (first.open[0], first.high[0], first.low[0], first.volume[0]) == (
        closes[0],
        closes[0] + 0.5,
        closes[0] - 0.5,
        10.0,
    )
    # The connection is usable afterwards: the copy's final result was read.
    from stratbox.markets.models import Bar

    assert Bar.objects.filter(market=market).count() == len(closes)


def test_an_empty_range_yields_nothing(market: Any) -> None:
    from stratbox.backtests.bars import market_bars_chunks

    store_bars(market, _closes(10))
    later = START + timedelta(days=30)
    assert (
        list(
            market_bars_chunks(
                market_id=market.pk, interval_seconds=60, start=later, end=later + timedelta(days=1), chunk=5
            )
        )
        == []
    )
    assert list(
        market_bars_chunks(
            market_id=market.pk,
            interval_seconds=60,
            start=START,
            end=START + timedelta(seconds=60 * 3),
            chunk=5,
        )
    )[0].close.tolist() == _closes(3)
