"""Track record of one instance, scored from one ledger: paper, live, or shadow — never mixed.

Ledgers
- `paper`: the instance's real (non-shadow) fills on a paper account — it was `active` there;
- `live`: the same on a live account;
- `shadow`: its shadow fills (observe mode, `is_shadow=True`), on whatever account, marked as such.
The ledger of real fills is the account's kind (an instance's account is immutable identity, so
one instance never has both). Backtests live in their own tables and are never read here.

Definitions (documented in docs/governance.md) — the one computation behind the graduation
box, the Performance card, the API and the staff review:
- A *trade* is a sale out of a position (v1 is long-only): a full close or a partial one. Its P&L
  is the sale's proceeds minus the cost of the quantity sold, minus the sale's fee and the buying
  fees of the quantity sold (the buys' fees, shared out by quantity). A *win* has P&L > 0, a
  *loss* < 0 (exactly 0 is neither). Counting sales, not open-to-flat round trips, keeps the
  record counting when a position is never flat again — e.g. after a reloading config change
  or an upgrade reset the strategy's own idea of what it holds.
- *win rate* = wins / trades * 100 (percent; exact Decimal, not rounded for comparisons).
- *P&L* = the sum of the trades' P&L. What is still open is reported separately (`open_pnl`:
  unrealized P&L minus the buying fees not yet shared out) and is not part of the score; `pnl +
  open_pnl` is the ledger's whole P&L.
- *equity curve*: starts at the instance's `total_capital` (its allocated capital — the base the
  percentages refer to) at `since`, then one point per trade, at its time: base + cumulative P&L.
  *max drawdown* = the largest fall from a running peak, as a percent of that peak (and as an
  amount); 0 with no losing stretch.
- *since* = the first fill of the ledger (None when it has none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Fill, Position
from stratbox.trading.selectors import instance_unrealized_pnl

ZERO = Decimal("0")
HUNDRED = Decimal("100")
FEE_PLACES = Decimal("0.00000001")  # the ledger's 8 decimals
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


def _trades(fills: Any) -> tuple[list[tuple[datetime, Decimal, Decimal]], Decimal]:
    """(time, P&L, fees) per sale, and the buying fees still held by open quantities.

    `fills` are (position_id, side, qty, fee, realized_pnl, ts) in time order. A sale's realized
    P&L already nets its own fee; it also carries its share of the position's unshared buy fees,
    by quantity (a full close takes the rest, so the shares add up exactly).
    """
    held: dict[Any, list[Decimal]] = {}  # position -> [open qty, buy fees not yet shared out]
    trades: list[tuple[datetime, Decimal, Decimal]] = []
    for position_id, side, qty, fee, realized, ts in fills:
        book = held.setdefault(position_id, [ZERO, ZERO])
        if side == "buy":
            book[0] += qty
            book[1] += fee
            continue
        if qty >= book[0] or book[0] <= 0:
            share = book[1]
        else:
            share = (book[1] * qty / book[0]).quantize(FEE_PLACES, rounding=ROUND_HALF_EVEN)
        book[0] = max(ZERO, book[0] - qty)
        book[1] -= share
        trades.append((ts, realized - share, fee + share))
    return trades, sum((book[1] for book in held.values() if book[0] > 0), ZERO)


def instance_track_record(
    *, instance: StrategyInstance, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> TrackRecord:
    """Score `instance` from its shadow ledger (`shadow=True`) or its real one (paper or live)."""
    ledger = "shadow" if shadow else instance.account.kind
    fills = list(
        Fill.objects.filter(instance_id=instance.pk, is_shadow=shadow)
        .order_by("ts", "id")
        .values_list("position_id", "side", "qty", "fee", "realized_pnl", "ts")
    )
    trades_list, open_fees = _trades(fills)
    first_fill = fills[0][5] if fills else None
    open_exists = Position.objects.filter(
        instance_id=instance.pk, is_shadow=shadow, closed_at__isnull=True
    ).exists()
    base = Decimal(instance.total_capital)
    curve: list[tuple[datetime, Decimal]] = [(first_fill, base)] if first_fill else []
    wins = losses = 0
    pnl = fees = ZERO
    for ts, trade_pnl, trade_fees in trades_list:
        pnl += trade_pnl
        fees += trade_fees
        wins += trade_pnl > 0
        losses += trade_pnl < 0
        curve.append((ts, base + pnl))
    dd_pct, dd_amount = max_drawdown([point for _, point in curve])
    trades = len(trades_list)
    open_pnl = (
        instance_unrealized_pnl(instance_id=instance.pk, shadow=shadow, marks=marks) - open_fees
        if open_exists
        else None
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
        last_trade_at=trades_list[-1][0] if trades_list else None,
        open_position=open_exists,
        open_pnl=open_pnl,
        equity_curve=curve,
    )
