"""Performance metrics of a backtest, computed from every bar's equity (never the downsampled curve).

Pure numpy over plain floats: nothing here touches Django, and nothing that crosses the sandbox
boundary is a pandas (or any other rich) object — the host sends lists of floats.

Definitions (all shown verbatim in docs/backtests.md):

* ``equity``: ``e_0`` is the starting capital, ``e_i`` the mark-to-market equity at the close of
  bar ``i`` (cash + position value at the close), ``i = 1..n``.
* ``total_return = e_n / e_0 - 1``; ``pnl = e_n - e_0``.
* ``max_drawdown = max_i (peak_i - e_i) / peak_i`` with ``peak_i = max(e_0..e_i)`` — a positive
  fraction (0.25 means the equity once stood 25 % below its previous high).
* Per-bar simple returns ``r_i = e_i / e_{i-1} - 1``.
* ``sharpe = mean(r) / std(r, ddof=1) * sqrt(P)`` with a zero risk-free rate, and
  ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(P)`` (downside deviation against a 0 target
  over *all* returns). ``P`` is the number of bars per year for the bar interval:
  ``P = 365 * 86400 / interval_seconds`` — markets on Stratbox trade around the clock (crypto and
  the simulated venues), so a year is 365 days of bars. Both are ``None`` when undefined (fewer
  than two returns, or a zero denominator).
* ``win_rate = winning trades / closed trades`` (a trade wins when its net P&L, fees included, is
  > 0); ``None`` without closed trades.
* ``exposure = bars with an open position at their close / n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SECONDS_PER_YEAR = 365 * 86400


def periods_per_year(interval_seconds: float) -> float:
    """Bars per year for a bar interval (markets trade 24/7, see the module docstring)."""
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be > 0")
    return SECONDS_PER_YEAR / interval_seconds


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak (0.0 if it never fell)."""
    if equity.size == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, (peaks - equity) / peaks, 0.0)
    return float(dd.max())


def bar_returns(equity: np.ndarray) -> np.ndarray:
    if equity.size < 2:
        return np.empty(0)
    prev = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev != 0, equity[1:] / prev - 1.0, 0.0)
    return r


def sharpe_ratio(returns: np.ndarray, periods: float) -> float | None:
    if returns.size < 2:
        return None
    sd = float(returns.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None
    return _finite_or_none(float(returns.mean()) / sd * math.sqrt(periods))


def sortino_ratio(returns: np.ndarray, periods: float) -> float | None:
    if returns.size < 2:
        return None
    downside = np.minimum(returns, 0.0)
    dd = math.sqrt(float(np.mean(downside * downside)))
    if dd == 0.0 or not math.isfinite(dd):
        return None
    return _finite_or_none(float(returns.mean()) / dd * math.sqrt(periods))


def win_rate(trade_pnls: Sequence[float]) -> float | None:
    if not trade_pnls:
        return None
    return sum(1 for p in trade_pnls if p > 0) / len(trade_pnls)


def compute(
    *,
    starting_capital: float,
    equity: np.ndarray | Sequence[float],
    trade_pnls: Sequence[float],
    bars_in_market: int,
    interval_seconds: float,
) -> dict[str, Any]:
    """All metrics of one run. ``equity`` holds one value per bar (e_1..e_n); e_0 is the capital."""
    per_bar = np.asarray(equity, dtype=np.float64)
    curve = np.concatenate(([float(starting_capital)], per_bar))
    n = int(per_bar.size)
    final = float(curve[-1])
    returns = bar_returns(curve)
    periods = periods_per_year(interval_seconds)
    return {
        "bars": n,
        "starting_capital": float(starting_capital),
        "final_equity": final,
        "pnl": final - float(starting_capital),
        "total_return": (final / float(starting_capital) - 1.0) if starting_capital else None,
        "max_drawdown": max_drawdown(curve),
        "sharpe": sharpe_ratio(returns, periods),
        "sortino": sortino_ratio(returns, periods),
        "win_rate": win_rate(trade_pnls),
        "exposure": (bars_in_market / n) if n else 0.0,
        "num_trades": len(trade_pnls),
        "periods_per_year": periods,
    }


def downsample(ts: np.ndarray, equity: np.ndarray, max_points: int = 2000) -> list[list[float]]:
    """At most ``max_points`` [ts, equity] pairs for storage and charts.

    Buckets keep their first point plus the bucket's min and max, so drawdowns stay visible in the
    chart; the last bar is always kept (the curve ends at the final equity).
    """
    n = int(equity.size)
    if n == 0:
        return []
    if n <= max_points:
        return [[float(t), float(e)] for t, e in zip(ts.tolist(), equity.tolist(), strict=True)]
    buckets = max(1, (max_points - 1) // 3)
    edges = np.linspace(0, n - 1, buckets + 1).astype(np.int64)
    keep: set[int] = {n - 1}
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        hi = max(hi, lo + 1)
        seg = equity[lo:hi]
        keep.add(lo)
        keep.add(lo + int(seg.argmin()))
        keep.add(lo + int(seg.argmax()))
    idx = np.fromiter(sorted(keep), dtype=np.int64)
    return [[float(t), float(e)] for t, e in zip(ts[idx].tolist(), equity[idx].tolist(), strict=True)]


def ledger_from_fills(
    *,
    ts: np.ndarray,
    close: np.ndarray,
    starting_capital: float,
    fills: Sequence[tuple[float, float, float, float]] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar equity and position from the fills (ts, signed qty, price, fee) of a run.

    Cash and position change only at fills, so ``equity_i = cash_i + qty_i * close_i`` with both
    being running sums over the fills up to and including bar ``i`` — exact for every bar, while
    only the (few) fills cross the sandbox boundary. A fill at a time that is not a bar's time is
    rejected (``ValueError``): the host can only fill on a bar.
    """
    n = int(ts.size)
    dq = np.zeros(n, dtype=np.float64)
    dcash = np.zeros(n, dtype=np.float64)
    dcash[0] = float(starting_capital) if n else 0.0
    if len(fills):
        arr = np.asarray(fills, dtype=np.float64).reshape(-1, 4)
        idx = np.searchsorted(ts, arr[:, 0])
        if (idx >= n).any() or not np.array_equal(ts[np.minimum(idx, n - 1)], arr[:, 0]):
            raise ValueError("a fill does not fall on a bar")
        np.add.at(dq, idx, arr[:, 1])
        np.add.at(dcash, idx, -(arr[:, 1] * arr[:, 2] + arr[:, 3]))
    qty = np.cumsum(dq)
    qty[np.abs(qty) < 1e-9] = 0.0  # float dust of an add-then-close is flat
    cash = np.cumsum(dcash)
    return cash + qty * close, qty
