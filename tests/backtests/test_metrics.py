"""Backtest metrics against numbers worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stratbox.backtests import metrics


def test_three_bar_curve_every_metric() -> None:
    # capital 100, closes of equity 110, 99, 121 -> curve 100, 110, 99, 121
    m = metrics.compute(
        starting_capital=100.0,
        equity=[110.0, 99.0, 121.0],
        trade_pnls=[5.0, -2.0, 0.0, 3.0],
        bars_in_market=2,
        interval_seconds=86400,
    )
    assert m["final_equity"] == 121.0
    assert m["pnl"] == pytest.approx(21.0)
    assert m["total_return"] == pytest.approx(0.21)
    # peaks 100, 110, 110, 121 -> the fall 110 -> 99 is 11/110 = 10 %
    assert m["max_drawdown"] == pytest.approx(0.10)
    # returns +0.1, -0.1, +22/99 (= 2/9); mean = 2/27; deviations 0.7/27, -4.7/27, 4/27
    # sample sd = sqrt((0.49 + 22.09 + 16) / 729 / 2) = sqrt(19.29) / 27
    # per-bar Sharpe = (2/27) / (sqrt(19.29)/27) = 2 / sqrt(19.29) = 0.455370...
    assert m["periods_per_year"] == 365
    assert m["sharpe"] == pytest.approx(0.455370 * math.sqrt(365), rel=1e-5)
    # downside deviation = sqrt((0 + 0.01 + 0) / 3) = 0.1/sqrt(3); Sortino = (2/27)/(0.1/sqrt 3) = 1.283001
    assert m["sortino"] == pytest.approx(1.283001 * math.sqrt(365), rel=1e-5)
    # 2 of 4 trades won (a zero-P&L trade is not a win)
    assert m["win_rate"] == 0.5
    assert m["num_trades"] == 4
    assert m["exposure"] == pytest.approx(2 / 3)


def test_drawdown_takes_the_deepest_fall_from_the_running_peak() -> None:
    # 100 -> 120 -> 90 (25 % off 120) -> 130 -> 65 (50 % off 130)
    assert metrics.max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 65.0])) == pytest.approx(0.5)
    assert metrics.max_drawdown(np.array([100.0, 101.0, 102.0])) == 0.0


def test_annualisation_by_bar_interval() -> None:
    assert metrics.periods_per_year(60) == 525_600  # minute bars, 365 days around the clock
    assert metrics.periods_per_year(3600) == 8760
    with pytest.raises(ValueError):
        metrics.periods_per_year(0)


def test_undefined_ratios_are_none_not_nan() -> None:
    flat = metrics.compute(
        starting_capital=100.0,
        equity=[100.0, 100.0, 100.0],
        trade_pnls=[],
        bars_in_market=0,
        interval_seconds=60,
    )
    assert flat["sharpe"] is None and flat["sortino"] is None
    assert flat["win_rate"] is None and flat["num_trades"] == 0
    assert flat["total_return"] == 0.0 and flat["max_drawdown"] == 0.0
    # only gains: no downside -> Sortino undefined, Sharpe defined
    up = metrics.compute(
        starting_capital=100.0,
        equity=[101.0, 103.0, 104.0],
        trade_pnls=[4.0],
        bars_in_market=3,
        interval_seconds=60,
    )
    assert up["sortino"] is None and up["sharpe"] is not None and up["win_rate"] == 1.0


def test_downsample_keeps_at_most_2000_points_extremes_and_the_end() -> None:
    n = 100_000
    ts = np.arange(n, dtype=np.float64)
    eq = np.full(n, 100.0)
    eq[31_337] = 50.0  # a one-bar crash must survive downsampling
    eq[77_000] = 300.0
    eq[-1] = 123.0
    curve = metrics.downsample(ts, eq, 2000)
    assert len(curve) <= 2000
    values = [p[1] for p in curve]
    assert 50.0 in values and 300.0 in values
    assert curve[-1] == [float(n - 1), 123.0]
    assert [p[0] for p in curve] == sorted(p[0] for p in curve)
    small = metrics.downsample(ts[:10], eq[:10], 2000)
    assert len(small) == 10
