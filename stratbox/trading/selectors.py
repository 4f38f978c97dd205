"""Reads for trading. Tenant-facing selectors take the tenant; exposure reads feed the risk gate.

Deployed capital (what the capital limits measure) = the cost basis of open, non-shadow positions
+ the notional reserved by resting (accepted or partially filled) non-shadow limit buys: what is
left to fill at their limit price.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import DecimalField, ExpressionWrapper, F, Model, QuerySet, Sum
from django.db.models.functions import Abs
from django.utils import timezone

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_is_valid, quotes_get_many
from stratbox.trading.models import Account, Fill, Order, OrderSide, OrderStatus, Position
from tenants.models import Tenant

ZERO = Decimal("0")
_NOTIONAL = ExpressionWrapper(
    (F("qty") - F("filled_qty")) * F("limit_price"),
    output_field=DecimalField(max_digits=40, decimal_places=16),
)
# The notional a resting limit order reserves: what is left to fill x its limit price. An order that
# filled in part (`partially_filled`) still reserves the rest, like an `accepted` one.
NOTIONAL = _NOTIONAL
PENDING_STATUSES = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


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
    return Order.objects.filter(tenant=tenant).select_related("market", "version")


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
    qs = Order.objects.filter(status__in=PENDING_STATUSES, is_shadow=False, side=OrderSide.BUY, **filters)
    return _sum(qs, _NOTIONAL)


def open_cost_basis(**filters: Any) -> Decimal:
    # Deployed capital: a short's negative cost_basis ties up its absolute value too.
    return _sum(
        Position.objects.filter(closed_at__isnull=True, is_shadow=False, **filters), Abs("cost_basis")
    )


def instance_deployed_capital(*, instance_id: Any) -> Decimal:
    return open_cost_basis(instance_id=instance_id) + pending_buy_notional(instance_id=instance_id)


def tenant_deployed_capital(*, tenant_id: Any) -> Decimal:
    return open_cost_basis(tenant_id=tenant_id) + pending_buy_notional(tenant_id=tenant_id)


def pending_sell_qty(*, instance_id: Any, market_id: int) -> Decimal:
    qs = Order.objects.filter(
        instance_id=instance_id,
        market_id=market_id,
        status__in=PENDING_STATUSES,
        is_shadow=False,
        side=OrderSide.SELL,
        reduce_only=False,  # bracket legs and reduce-only exits die with the position: no reservation
    )
    return _sum(qs, F("qty") - F("filled_qty"))


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


def _unrealized(qty: Decimal, cost_basis: Decimal, mark: Decimal | None) -> Decimal:
    if mark is None:
        return ZERO
    return (qty * mark - cost_basis).quantize(Decimal("0.00000001"))


def position_unrealized_pnl(position: Position, mark: Decimal | None) -> Decimal:
    """Open qty valued at the mark minus what it cost; zero when there is no mark."""
    if position.closed_at is not None:
        return ZERO
    return _unrealized(position.qty, position.cost_basis, mark)


def open_positions_unrealized_pnl(
    positions: Sequence[tuple[int, Decimal, Decimal]], marks: dict[int, Decimal] | None = None
) -> Decimal:
    """Unrealized P&L of open positions given as (market_id, qty, cost_basis).

    Marked at `marks`, else at the market's latest quote `price` (one Redis round trip for the
    markets missing from `marks`); a market without a quote counts zero.
    """
    if not positions:
        return ZERO
    marks = dict(marks or {})
    missing = [market_id for market_id, _, _ in positions if market_id not in marks]
    for market_id, quote in quotes_get_many(missing).items():
        marks[market_id] = Decimal(str(quote["price"]))
    return sum((_unrealized(qty, cost, marks.get(market_id)) for market_id, qty, cost in positions), ZERO)


_REALIZED_AND_OPEN_SQL = """
SELECT
  (SELECT sum(realized_pnl) FROM trading_fill WHERE instance_id = %(instance)s AND is_shadow = %(shadow)s
     AND ts >= %(day_start)s AND ts < %(day_end)s),
  array_agg(market_id ORDER BY opened_at DESC, id),
  array_agg(qty ORDER BY opened_at DESC, id),
  array_agg(cost_basis ORDER BY opened_at DESC, id)
FROM trading_position WHERE instance_id = %(instance)s AND is_shadow = %(shadow)s AND closed_at IS NULL
"""


def instance_realized_and_open_positions(
    *, instance_id: Any, shadow: bool, day: date
) -> tuple[Decimal, tuple[tuple[int, Decimal, Decimal], ...]]:
    """`instance_realized_pnl(day=)` and the open positions as (market_id, qty, cost_basis): one statement."""
    start, end = day_bounds(day)
    params = {"instance": instance_id, "shadow": shadow, "day_start": start, "day_end": end}
    with connection.cursor() as cursor:
        cursor.execute(_REALIZED_AND_OPEN_SQL, params)
        realized, markets, qtys, costs = cursor.fetchone()
    return realized or ZERO, tuple(zip(markets or (), qtys or (), costs or (), strict=True))


def instance_unrealized_pnl(
    *, instance_id: Any, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> Decimal:
    """Unrealized P&L of the instance's open positions, marked at the quote's last `price`."""
    positions = Position.objects.filter(instance_id=instance_id, is_shadow=shadow, closed_at__isnull=True)
    return open_positions_unrealized_pnl(list(positions.values_list("market_id", "qty", "cost_basis")), marks)


def instance_recent_orders(*, instance: StrategyInstance, shadow: bool, limit: int = 20) -> list[Order]:
    return list(
        Order.objects.filter(instance=instance, is_shadow=shadow).order_by("-created_at", "-id")[:limit]
    )


# --- the risk gate's one read -------------------------------------------------------------
#
# The gate needs a dozen aggregates; as ORM queries they cost a dozen round trips and ~0.3 ms of
# query compilation each. `exposure_read` computes them in ONE statement with exactly the filters
# of the selectors above (tests/trading/test_exposure_read.py compares the two on random ledgers).
# Resting real orders are found through the partial indexes `order_pending_*` (migration 0004),
# not by scanning an instance's, tenant's or account's whole order history.

_M = TypeVar("_M", bound=Model)


def model_columns(model: type[Model], alias: str) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


@functools.cache
def _row_layout(model: type[Model]) -> tuple[list[str], int, list[tuple[int, Any]]]:
    fields = model._meta.concrete_fields
    converters = [(i, f) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    return [f.attname for f in fields], fields.index(model._meta.pk), converters


def model_from_row(model: type[_M], row: Sequence[Any], start: int = 0) -> _M | None:
    """The `model` instance held in row[start:start + its column count] (None when its pk is NULL).

    The columns come in `_meta.concrete_fields` order (as `model_columns` writes them); fields with a
    `from_db_value` (JSON) are converted as the ORM would (PostgreSQL has no backend converters).
    """
    names, pk_at, converters = _row_layout(model)
    values = list(row[start : start + len(names)])
    if values[pk_at] is None:
        return None
    if converters:
        conn = connections[DEFAULT_DB_ALIAS]
        for i, field in converters:
            values[i] = field.from_db_value(values[i], None, conn)
    return model.from_db(DEFAULT_DB_ALIAS, names, values)


def column_count(model: type[Model]) -> int:
    return len(model._meta.concrete_fields)


# The statements, over the tables of the selectors above. {instance}/{source} make the variant that
# also returns the instance row; {position} is the open position of the instance's market.
_SELL_SQL = """
SELECT {instance}
  (SELECT count(*) FROM trading_order WHERE instance_id = %(instance)s AND NOT is_shadow
     AND status IN ('accepted', 'partially_filled', 'filled', 'cancelled', 'expired', 'unknown') AND created_at > %(since)s),
  (SELECT sum(qty - filled_qty) FROM trading_order WHERE instance_id = %(instance)s AND market_id = %(market)s
     AND status IN ('accepted', 'partially_filled') AND NOT is_shadow AND side = 'sell' AND NOT reduce_only),
  {position}
FROM {source}
LEFT JOIN LATERAL (SELECT * FROM trading_position WHERE instance_id = %(instance)s
  AND market_id = %(market)s AND NOT is_shadow AND closed_at IS NULL ORDER BY opened_at DESC LIMIT 1) p ON true
"""
_BUY_SQL = """
WITH pos AS (
  SELECT * FROM trading_position WHERE instance_id = %(instance)s AND NOT is_shadow AND closed_at IS NULL
), pend AS (
  SELECT market_id, (qty - filled_qty) * limit_price AS notional FROM trading_order
  WHERE instance_id = %(instance)s AND status IN ('accepted', 'partially_filled') AND NOT is_shadow
  AND side = 'buy'
)
SELECT {instance}
  (SELECT count(*) FROM trading_order WHERE instance_id = %(instance)s AND NOT is_shadow
     AND status IN ('accepted', 'partially_filled', 'filled', 'cancelled', 'expired', 'unknown') AND created_at > %(since)s),
  (SELECT sum(realized_pnl) FROM trading_fill WHERE instance_id = %(instance)s AND NOT is_shadow
     AND ts >= %(day_start)s AND ts < %(day_end)s),
  (SELECT array_agg(market_id ORDER BY opened_at DESC, id) FROM pos),
  (SELECT array_agg(qty ORDER BY opened_at DESC, id) FROM pos),
  (SELECT array_agg(cost_basis ORDER BY opened_at DESC, id) FROM pos),
  (SELECT sum(abs(cost_basis)) FROM pos),
  (SELECT sum(notional) FROM pend WHERE market_id = %(market)s),
  (SELECT sum(notional) FROM pend),
  (SELECT count(DISTINCT market_id) FROM pend WHERE market_id NOT IN (SELECT market_id FROM pos)),
  (SELECT sum(abs(cost_basis)) FROM trading_position WHERE tenant_id = %(tenant)s AND NOT is_shadow
     AND closed_at IS NULL),
  (SELECT sum((qty - filled_qty) * limit_price) FROM trading_order WHERE tenant_id = %(tenant)s
     AND status IN ('accepted', 'partially_filled') AND NOT is_shadow AND side = 'buy'),
  (SELECT sum((qty - filled_qty) * limit_price) FROM trading_order WHERE account_id = %(account)s
     AND status IN ('accepted', 'partially_filled') AND NOT is_shadow AND side = 'buy'),
  {position}
FROM {source}
LEFT JOIN LATERAL (SELECT * FROM pos WHERE market_id = %(market)s ORDER BY opened_at DESC LIMIT 1) p ON true
"""
_EXPOSURE_SQL = {
    (side, with_instance): template.format(
        instance=model_columns(StrategyInstance, "i") + "," if with_instance else "",
        source="instances_strategyinstance i" if with_instance else "(SELECT 1) AS one",
        position=model_columns(Position, "p"),
    )
    + ("WHERE i.id = %(instance)s" if with_instance else "")
    for side, template in (("sell", _SELL_SQL), ("buy", _BUY_SQL))
    for with_instance in (True, False)
}


@dataclass(frozen=True)
class Exposure:
    """What the pre-trade gate measures for one order, in the selectors' exact semantics.

    Sells read only the first three fields; the rest stay zero/empty.
    """

    recent_orders: int  # real pending/filled/cancelled orders of the instance created after `since`
    position: Position | None  # `open_position(instance, market)`
    pending_sell_qty: Decimal = ZERO  # `pending_sell_qty(instance, market)`
    realized_today: Decimal = ZERO  # `instance_realized_pnl(instance, day)`
    open_positions: tuple[tuple[int, Decimal, Decimal], ...] = ()  # (market_id, qty, cost_basis)
    open_cost_basis: Decimal = ZERO  # `open_cost_basis(instance_id=)`
    pending_buy_here: Decimal = ZERO  # `pending_buy_notional(instance_id=, market_id=)`
    pending_buy: Decimal = ZERO  # `pending_buy_notional(instance_id=)`
    pending_other_markets: int = 0  # markets with a resting buy of the instance but no open position
    tenant_open_cost_basis: Decimal = ZERO  # `open_cost_basis(tenant_id=)`
    tenant_pending_buy: Decimal = ZERO  # `pending_buy_notional(tenant_id=)`
    account_pending_buy: Decimal = ZERO  # `pending_buy_notional(account_id=)`

    @property
    def instance_deployed_capital(self) -> Decimal:
        return self.open_cost_basis + self.pending_buy

    @property
    def tenant_deployed_capital(self) -> Decimal:
        return self.tenant_open_cost_basis + self.tenant_pending_buy


def exposure_read(
    *,
    instance_id: Any,
    tenant_id: Any,
    account_id: Any,
    market_id: int,
    side: str,
    now: datetime,
    with_instance: bool = False,
) -> tuple[StrategyInstance | None, Exposure]:
    """Everything the gate measures for a `side` order, and (`with_instance`) the instance row: ONE statement.

    Run it while holding the tenant and account locks: it then reads what every earlier order of
    the tenant left behind. With `with_instance`, a missing instance raises DoesNotExist.
    """
    params: dict[str, Any] = {
        "instance": instance_id,
        "market": market_id,
        "since": now - timedelta(seconds=60),
    }
    buy = side == OrderSide.BUY
    if buy:
        params["day_start"], params["day_end"] = day_bounds(now.date())
        params["tenant"], params["account"] = tenant_id, account_id
    with connection.cursor() as cursor:
        cursor.execute(_EXPOSURE_SQL[("buy" if buy else "sell", with_instance)], params)
        row = cursor.fetchone()
    if row is None:
        raise StrategyInstance.DoesNotExist(f"instance {instance_id} does not exist")
    instance = None
    at = 0
    if with_instance:
        instance = model_from_row(StrategyInstance, row)
        at = column_count(StrategyInstance)
    if not buy:
        recent, pending_sell = row[at : at + 2]
        position = model_from_row(Position, row, at + 2)
        return instance, Exposure(
            recent_orders=recent, position=position, pending_sell_qty=pending_sell or ZERO
        )
    (
        recent,
        realized,
        markets,
        qtys,
        costs,
        open_cost,
        pending_here,
        pending,
        pending_other,
        tenant_cost,
        tenant_pending,
        account_pending,
    ) = row[at : at + 12]
    return instance, Exposure(
        recent_orders=recent,
        position=model_from_row(Position, row, at + 12),
        realized_today=realized or ZERO,
        open_positions=tuple(zip(markets or (), qtys or (), costs or (), strict=True)),
        open_cost_basis=open_cost or ZERO,
        pending_buy_here=pending_here or ZERO,
        pending_buy=pending or ZERO,
        pending_other_markets=pending_other,
        tenant_open_cost_basis=tenant_cost or ZERO,
        tenant_pending_buy=tenant_pending or ZERO,
        account_pending_buy=account_pending or ZERO,
    )


# --- snapshots and stats (what a tick and the pages read) -------------------------------------


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def order_as_dict(order: Order) -> dict[str, Any]:
    return {
        "id": str(order.pk),
        "client_order_id": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "qty": float(order.qty),
        "price": float(order.limit_price) if order.limit_price is not None else None,
        "stop_price": float(order.stop_price) if order.stop_price is not None else None,
        "status": order.status,
        "filled": order.filled_at is not None,
        "filled_qty": float(order.filled_qty),
        "fill_price": float(order.fill_price) if order.fill_price is not None else None,
        "fee": float(order.fee),
        "deny_code": order.deny_code or None,
        "tag": order.tag or None,
        "created_at": _ts(order.created_at),
        "filled_at": _ts(order.filled_at),
    }


def position_as_dict(position: Position, mark: Decimal | None) -> dict[str, Any]:
    return {
        "id": str(position.pk),
        "market_id": position.market_id,
        "qty": float(position.qty),
        "avg_price": float(position.avg_price),
        "cost_basis": str(position.cost_basis),
        "realized_pnl": str(position.realized_pnl),
        "unrealized_pnl": str(position_unrealized_pnl(position, mark)),
        "opened_at": _ts(position.opened_at),
    }


def _mark(quote: dict[str, Any] | None) -> Decimal | None:
    return Decimal(str(quote["price"])) if quote_is_valid(quote) else None


def instance_snapshot(*, instance: StrategyInstance, quote: dict[str, Any] | None) -> dict[str, Any]:
    """The trusted parts of a tick's snapshot. Observe mode sees its shadow ledger, active its real one."""
    shadow = instance.mode != Mode.ACTIVE
    mark = _mark(quote)
    marks = {instance.market_id: mark} if mark is not None else {}
    positions = list(Position.objects.filter(instance=instance, is_shadow=shadow, closed_at__isnull=True))
    own = next((p for p in positions if p.market_id == instance.market_id), None)
    balance = Account.objects.filter(pk=instance.account_id).values_list("balance", flat=True).first() or ZERO
    realized = instance_realized_pnl(instance_id=instance.pk, shadow=shadow)
    unrealized = instance_unrealized_pnl(instance_id=instance.pk, shadow=shadow, marks=marks)
    deployed = (
        instance_deployed_capital(instance_id=instance.pk)
        if not shadow
        else sum((abs(p.cost_basis) for p in positions), ZERO)
    )
    return {
        "orders": [order_as_dict(o) for o in instance_recent_orders(instance=instance, shadow=shadow)],
        "position": position_as_dict(own, mark) if own else None,
        "positions": [position_as_dict(p, marks.get(p.market_id)) for p in positions],
        "balance": str(balance),
        "pnl": {
            "realized": str(realized),
            "unrealized": str(unrealized),
            "today": str(
                instance_daily_pnl(instance=instance, day=timezone.now().date(), shadow=shadow, marks=marks)
            ),
        },
        "deployed_capital": str(deployed),
        "available_capital": str(max(ZERO, instance.total_capital - deployed)),
    }


def instance_daily_pnl(
    *, instance: StrategyInstance, day: date, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> Decimal:
    """Realized P&L of fills on `day` (UTC) plus, for today, the unrealized P&L of open positions.

    Today's (what the engine checks after every active order) is one statement for both parts.
    """
    if day != timezone.now().date():
        return instance_realized_pnl(instance_id=instance.pk, shadow=shadow, day=day)
    realized, positions = instance_realized_and_open_positions(
        instance_id=instance.pk, shadow=shadow, day=day
    )
    return realized + open_positions_unrealized_pnl(positions, marks)


def instance_stats(*, instance: StrategyInstance, shadow: bool = False) -> dict[str, Any]:
    """Trades (closing sells), wins, win rate, realized / unrealized P&L, fees, order counts."""
    fills = Fill.objects.filter(instance=instance, is_shadow=shadow)
    closing = list(fills.filter(side=OrderSide.SELL).values_list("realized_pnl", flat=True))
    wins = sum(1 for pnl in closing if pnl > 0)
    orders = Order.objects.filter(instance=instance, is_shadow=shadow)
    return {
        "trades": len(closing),
        "wins": wins,
        "losses": sum(1 for pnl in closing if pnl < 0),
        "win_rate": (wins / len(closing)) if closing else None,
        "realized_pnl": str(instance_realized_pnl(instance_id=instance.pk, shadow=shadow)),
        "unrealized_pnl": str(instance_unrealized_pnl(instance_id=instance.pk, shadow=shadow)),
        "fees": str(sum(fills.values_list("fee", flat=True), ZERO)),
        "orders": orders.count(),
        "rejected": orders.filter(status=OrderStatus.REJECTED).count(),
        "open_positions": Position.objects.filter(
            instance=instance, is_shadow=shadow, closed_at__isnull=True
        ).count(),
    }
