"""What a backtest's market adds to each chunk: its trading hours and, for a resolved binary
contract, its settlement — as plain data for the sandbox host (``sandbox.sessions.Windows``,
``SimBroker.settle``), so the backtest applies the rules paper trading applies.

- Trading hours (``Market.trading_hours``): each chunk gets the UTC session windows that cover its
  bars (DST-aware: computed here with zoneinfo, which the confined host cannot read) and the bar
  length (a bar trades when any part of it is inside a session). Always-open markets send nothing.
- Settlement: a binary market resolved (``resolved_at`` and ``resolved_value`` set) no later than
  the end of the backtest's range settles the position at 1 or 0, fee-free, as
  ``trading.services.settlement.market_resolve`` does in paper trading. The run stops at the
  resolution: bars after it are not run, and the settlement fill is booked on the last bar at or
  before the resolution time (a fill must fall on a bar; the first bar when the market resolved
  before the run's first bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox.sessions import Session, session_parse
from stratbox.backtests.csvbars import BarColumns
from stratbox.backtests.models import Backtest
from stratbox.markets.models import MarketKind


@dataclass(frozen=True)
class MarketRules:
    session: Session | None = None
    span: float = 0.0
    settle_ts: float | None = None
    settle_value: float | None = None

    @property
    def active(self) -> bool:
        return self.session is not None or self.settle_ts is not None

    def cut(self, part: BarColumns, following: BarColumns | None) -> tuple[BarColumns, bool]:
        """The chunk's bars up to the resolution, and whether it is the run's last chunk."""
        last = following is None
        if self.settle_ts is None:
            return part, last
        keep = int(np.searchsorted(part.ts, self.settle_ts, side="right"))
        if keep < len(part):
            return part.slice(0, max(keep, 1)), True
        return part, last or bool(following is not None and following.ts[0] > self.settle_ts)

    def chunk_params(self, params: dict[str, Any], part: BarColumns, last: bool) -> dict[str, Any]:
        """``params`` plus this chunk's session windows and, on the last chunk, the settlement."""
        if not self.active or not len(part):
            return params
        out = dict(params)
        if self.session is not None:
            out["sessions"] = self.session.windows_flat(float(part.ts[0]), float(part.ts[-1]) + self.span)
            out["session_span"] = self.span
            out["session_label"] = self.session.label
        if last and self.settle_value is not None:
            out["settle"] = {"value": self.settle_value}
        return out

    def notes(self) -> dict[str, Any]:
        """What the results record about the market's rules (shown with the metrics)."""
        out: dict[str, Any] = {}
        if self.session is not None:
            out["trading_hours"] = self.session.label
        if self.settle_ts is not None:
            out["settlement"] = {"resolved_ts": self.settle_ts, "value": self.settle_value}
        return out


def market_rules_for(bt: Backtest) -> MarketRules:
    """The rules of the backtest's market (none for CSV or dataset runs, which have no market)."""
    if bt.market_id is None:
        return MarketRules()
    market = bt.market
    assert market is not None
    session = session_parse(market.trading_hours)
    settle_ts = settle_value = None
    if (
        market.kind == MarketKind.BINARY
        and market.resolved_at is not None
        and market.resolved_value is not None
        and (bt.end is None or market.resolved_at <= bt.end)
    ):
        settle_ts = market.resolved_at.timestamp()
        settle_value = float(market.resolved_value)
    return MarketRules(session, float(bt.interval_seconds), settle_ts, settle_value)
