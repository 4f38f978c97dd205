"""Reads for trading. Tenant-facing selectors take the tenant; exposure reads feed the risk gate.

Deployed capital (what the capital limits measure) = the cost basis of open, non-shadow positions
+ the notional reserved by resting (pending) non-shadow limit buys at their limit price.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import quotes_get_many
from stratbox.trading.models import Account, Fill, Order, OrderSide, OrderStatus, Position
from tenants.models import Tenant

ZERO = Decimal("0")
_NOTIONAL = ExpressionWrapper(
    F("qty") * F("limit_price"), output_field=DecimalField(max_digits=40, decimal_places=16)
)
NOTIONAL = _NOTIONAL  # the notional a resting limit order reserves (qty x limit price)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


# --- tenant-facing ----------------------------------------------------------------------


def account_list(*, tenant: Tenant) -> QuerySet[Account]:
    return Account.objects.filter(tenant=tenant)


def account_get(*, tenant: Tenant, account_id: Any) -> Account | None:
    pk = _uuid_or_none(account_id)
    return Account.objects.filter(tenant=tenant, pk=pk).first() if pk else None


def order_list(*, tenant: Tenant) -> QuerySet[Order]:
    return Order.objects.filter(tenant=tenant).select_related("market")


def order_get(*, tenant: Tenant, order_id: Any) -> Order | None:
    pk = _uuid_or_none(order_id)
    return order_list(tenant=tenant).filter(pk=pk).first() if pk else None


def fill_list(*, tenant: Tenant) -> QuerySet[Fill]:
    return Fill.objects.filter(tenant=tenant).select_related("order", "market")


def position_list(*, tenant: Tenant) -> QuerySet[Position]:
    return Position.objects.filter(tenant=tenant).select_related("market")


def position_get(*, tenant: Tenant, position_id: Any) -> Position | None:
    pk = _uuid_or_none(position_id)
    return position_list(tenant=tenant).filter(pk=pk).first() if pk else None


# --- exposure (trusted reads for the risk gate; run them while holding the tenant lock) --------


def _sum(qs: QuerySet[Any], expr: Any) -> Decimal:
    return qs.aggregate(total=Sum(expr))["total"] or ZERO


def pending_buy_notional(**filters: Any) -> Decimal:
    qs = Order.objects.filter(status=OrderStatus.PENDING, is_shadow=False, side=OrderSide.BUY, **filters)
    return _sum(qs, _NOTIONAL)


def open_cost_basis(**filters: Any) -> Decimal:
    return _sum(Position.objects.filter(closed_at__isnull=True, is_shadow=False, **filters), "cost_basis")


def instance_deployed_capital(*, instance_id: Any) -> Decimal:
    return open_cost_basis(instance_id=instance_id) + pending_buy_notional(instance_id=instance_id)


def tenant_deployed_capital(*, tenant_id: Any) -> Decimal:
    return open_cost_basis(tenant_id=tenant_id) + pending_buy_notional(tenant_id=tenant_id)


def pending_sell_qty(*, instance_id: Any, market_id: int) -> Decimal:
    qs = Order.objects.filter(
        instance_id=instance_id,
        market_id=market_id,
        status=OrderStatus.PENDING,
        is_shadow=False,
        side=OrderSide.SELL,
    )
    return _sum(qs, "qty")


def open_position(*, instance_id: Any, market_id: int, shadow: bool = False) -> Position | None:
    return Position.objects.filter(
        instance_id=instance_id, market_id=market_id, is_shadow=shadow, closed_at__isnull=True
    ).first()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=timezone.get_fixed_timezone(0))
    return start, start + timedelta(days=1)


def instance_realized_pnl(*, instance_id: Any, shadow: bool = False, day: date | None = None) -> Decimal:
    qs = Fill.objects.filter(instance_id=instance_id, is_shadow=shadow)
    if day is not None:
        start, end = day_bounds(day)
        qs = qs.filter(ts__gte=start, ts__lt=end)
    return _sum(qs, "realized_pnl")


def position_unrealized_pnl(position: Position, mark: Decimal | None) -> Decimal:
    """Open qty valued at the mark minus what it cost; zero when there is no mark."""
    if mark is None or position.closed_at is not None:
        return ZERO
    return (position.qty * mark - position.cost_basis).quantize(Decimal("0.00000001"))


def instance_unrealized_pnl(
    *, instance_id: Any, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> Decimal:
    """Unrealized P&L of the instance's open positions, marked at the quote's last `price`."""
    positions = list(
        Position.objects.filter(instance_id=instance_id, is_shadow=shadow, closed_at__isnull=True)
    )
    if not positions:
        return ZERO
    marks = dict(marks or {})
    missing = [p.market_id for p in positions if p.market_id not in marks]
    for market_id, quote in quotes_get_many(missing).items():
        marks[market_id] = Decimal(str(quote["price"]))
    return sum((position_unrealized_pnl(p, marks.get(p.market_id)) for p in positions), ZERO)


def instance_recent_orders(*, instance: StrategyInstance, shadow: bool, limit: int = 20) -> list[Order]:
    return list(
        Order.objects.filter(instance=instance, is_shadow=shadow).order_by("-created_at", "-id")[:limit]
    )
