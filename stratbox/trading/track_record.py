"""Track record of one instance, scored from one ledger: paper, live, or shadow — never mixed.

Ledgers
- `paper`: the instance's real (non-shadow) fills on a paper account — it was `active` there;
- `live`: the same on a live account;
- `shadow`: its shadow fills (observe mode, `is_shadow=True`), on whatever account, marked as such.
The ledger of real fills is the account's kind (an instance's account is immutable identity, so
one instance never has both). Backtests live in their own tables and are never read here.

Definitions (documented in docs/governance.md)
- A *trade* is a round trip: a `Position` row of the ledger that was opened (first buy) and has
  been closed (its quantity went back to zero). Partial sells in between belong to the same trade.
  Its P&L is the position's `realized_pnl`: sell proceeds minus cost, minus every fee of the
  round trip (buy fees included). A *win* has P&L > 0, a *loss* < 0 (exactly 0 is neither).
- *win rate* = wins / trades * 100 (percent; exact Decimal, not rounded for comparisons).
- *P&L* = the sum of the closed trades' P&L. The open position's unrealized P&L is reported
  separately (`open_pnl`) and is not part of the score.
- *equity curve*: starts at the instance's `total_capital` (its allocated capital — the base the
  percentages refer to) at `since`, then one point per closed trade, at its close time:
  base + cumulative P&L. *max drawdown* = the largest fall from a running peak, as a percent of
  that peak (and as an amount); 0 with no losing stretch.
- *since* = the first fill of the ledger (None when it has none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Fill, Position
from stratbox.trading.selectors import instance_unrealized_pnl

ZERO = Decimal("0")
HUNDRED = Decimal("100")
LEDGERS = ("paper", "live", "shadow")


@dataclass(frozen=True)
class TrackRecord:
    instance_id: str
    ledger: str  # "paper" | "live" | "shadow"
    is_shadow: bool
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None  # percent; None without trades
    pnl: Decimal
    fees: Decimal
    max_drawdown: Decimal  # percent of the running peak
    max_drawdown_amount: Decimal
    capital_base: Decimal
    since: datetime | None
    last_trade_at: datetime | None
    open_position: bool
    open_pnl: Decimal | None
    equity_curve: list[tuple[datetime, Decimal]] = field(default_factory=list)

    def as_json(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-safe (Decimals as strings, times ISO 8601): for API responses and request snapshots."""
        data = asdict(self)
        data["win_rate"] = _pct(self.win_rate)
        data["max_drawdown"] = _pct(self.max_drawdown)
        for key in ("pnl", "fees", "max_drawdown_amount", "capital_base"):
            data[key] = str(data[key])
        data["open_pnl"] = str(self.open_pnl) if self.open_pnl is not None else None
        data["since"] = self.since.isoformat() if self.since else None
        data["last_trade_at"] = self.last_trade_at.isoformat() if self.last_trade_at else None
        if curve:
            data["equity_curve"] = [[ts.isoformat(), str(eq)] for ts, eq in self.equity_curve]
        else:
            data.pop("equity_curve")
        return data


def _pct(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def max_drawdown(points: list[Decimal]) -> tuple[Decimal, Decimal]:
    """(percent of the peak, amount) of the largest peak-to-trough fall of an equity series."""
    peak: Decimal | None = None
    worst_pct, worst_amount = ZERO, ZERO
    for equity in points:
        if peak is None or equity > peak:
            peak = equity
            continue
        fall = peak - equity
        if fall > worst_amount:
            worst_amount = fall
        if peak > 0 and fall * HUNDRED / peak > worst_pct:
            worst_pct = fall * HUNDRED / peak
    return worst_pct, worst_amount


def instance_track_record(
    *, instance: StrategyInstance, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> TrackRecord:
    """Score `instance` from its shadow ledger (`shadow=True`) or its real one (paper or live)."""
    ledger = "shadow" if shadow else instance.account.kind
    positions = list(
        Position.objects.filter(instance_id=instance.pk, is_shadow=shadow, closed_at__isnull=False)
        .order_by("closed_at", "opened_at", "id")
        .values_list("realized_pnl", "fees", "closed_at")
    )
    first_fill = (
        Fill.objects.filter(instance_id=instance.pk, is_shadow=shadow)
        .order_by("ts", "id")
        .values_list("ts", flat=True)
        .first()
    )
    open_exists = Position.objects.filter(
        instance_id=instance.pk, is_shadow=shadow, closed_at__isnull=True
    ).exists()
    base = Decimal(instance.total_capital)
    equity = base
    curve: list[tuple[datetime, Decimal]] = [(first_fill, base)] if first_fill else []
    wins = losses = 0
    pnl = fees = ZERO
    for realized, fee, closed_at in positions:
        pnl += realized
        fees += fee
        wins += realized > 0
        losses += realized < 0
        equity = base + pnl
        curve.append((closed_at, equity))
    dd_pct, dd_amount = max_drawdown([point for _, point in curve])
    trades = len(positions)
    open_pnl = (
        instance_unrealized_pnl(instance_id=instance.pk, shadow=shadow, marks=marks) if open_exists else None
    )
    return TrackRecord(
        instance_id=str(instance.pk),
        ledger=ledger,
        is_shadow=shadow,
        trades=trades,
        wins=wins,
        losses=losses,
        win_rate=(Decimal(wins) * HUNDRED / Decimal(trades)) if trades else None,
        pnl=pnl,
        fees=fees,
        max_drawdown=dd_pct,
        max_drawdown_amount=dd_amount,
        capital_base=base,
        since=first_fill,
        last_trade_at=positions[-1][2] if positions else None,
        open_position=open_exists,
        open_pnl=open_pnl,
        equity_curve=curve,
    )
