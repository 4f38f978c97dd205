"""Shadow orders through the gate: an observe-mode order is judged by the instance's capital rules
on its shadow ledger (the rules of `sandbox.fillmodel.gate_problem`, as the backtester and the
paper gate apply them), so the shadow track record never counts a trade the gate would deny."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import Abs

from sandbox import fillmodel as fm
from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import quote_is_valid
from stratbox.trading.brokers import PaperBroker
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import Fill, OrderSide, Position
from stratbox.trading.risk import Deny, OrderRequest

ZERO = Decimal(0)


@dataclass(frozen=True)
class ShadowExposure:
    """What the gate needs of the shadow ledger (read with the instance by `order_place`)."""

    limits: dict[str, Any]
    open_positions: int
    deployed: Decimal
    realized_today: Decimal


def instance_limits(instance: StrategyInstance) -> dict[str, Any]:
    """The instance's capital rules as `fillmodel.gate_problem` takes them."""
    return {
        "max_daily_loss": instance.max_daily_loss,
        "capital_per_trade": instance.capital_per_trade,
        "max_positions": instance.max_positions,
        "max_position_size": instance.max_position_size,
        "total_capital": instance.total_capital,
    }


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    return start, start + timedelta(days=1)


def shadow_exposure_read(instance: StrategyInstance, now: datetime) -> ShadowExposure:
    """The shadow ledger's aggregates by the ORM (the rare path where the engine claimed active)."""
    open_positions = Position.objects.filter(instance_id=instance.pk, is_shadow=True, closed_at__isnull=True)
    totals = open_positions.aggregate(n=Count("id"), cost=Sum(Abs("cost_basis")))
    start, end = day_bounds(now)
    realized = Fill.objects.filter(
        instance_id=instance.pk, is_shadow=True, ts__gte=start, ts__lt=end
    ).aggregate(total=Sum("realized_pnl"))["total"]
    return ShadowExposure(
        instance_limits(instance), totals["n"] or 0, totals["cost"] or ZERO, realized or ZERO
    )


def shadow_gate(
    req: OrderRequest,
    position: Position | None,
    quote: Any,
    broker: PaperBroker,
    allow_short: bool,
    exposure: ShadowExposure,
) -> tuple[str, str] | None:
    """The deny code and message the gate gives this shadow order, or None when it would pass.

    Orders that only reduce the shadow position pass (as getting out always does). Without a quote
    nothing can be priced, so nothing is judged (the order is recorded unfilled, as before)."""
    held = position.qty if position is not None else ZERO
    if req.reduce_only:
        return None
    if req.side == OrderSide.SELL and held > 0 and req.qty <= held:
        return None
    if req.side == OrderSide.BUY and held < 0 and req.qty <= -held:
        return None
    if req.side == OrderSide.SELL and not allow_short:
        return (
            Deny.INSUFFICIENT_POSITION,
            f"no shorting: sell {req.qty.normalize()} exceeds the shadow position",
        )
    if not quote_is_valid(quote):
        return None
    est = broker.estimate_price(
        side=req.side, type=req.type, limit_price=req.limit_price, quote=quote, stop_price=req.stop_price
    )
    mark = Decimal(str(quote["price"]))
    unrealized = position.qty * mark - position.cost_basis if position is not None else ZERO
    return fm.gate_problem(
        q8(req.qty * est),
        exposure.limits,
        position_cost=abs(position.cost_basis) if position is not None else ZERO,
        deployed=exposure.deployed,
        open_positions=exposure.open_positions,
        has_position=position is not None,
        daily_pnl=exposure.realized_today + unrealized,
    )
