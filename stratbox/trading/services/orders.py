"""Placing orders (idempotent, under row locks), filling resting ones, cancelling open ones.

The one rule that matters: every write that can change deployed capital or cash (an active order,
a resting order's fill) runs in ONE transaction that first locks the tenant row and then the
account row (`SELECT ... FOR UPDATE`, always in that order, so concurrent ticks queue instead of
deadlocking), re-reads the instance, runs the risk gate and applies the fill (`ledger`). Two ticks
of one tenant therefore see each other's orders and can never exceed a limit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sandbox import fillmodel as fm
from sandbox.sessions import session_parse
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_is_valid
from stratbox.rows import mark_saved, row_write
from stratbox.trading.brokers import PaperBroker, broker_for_account
from stratbox.trading.models import Account, AccountKind, Order, OrderSide, OrderStatus, Position, TimeInForce
from stratbox.trading.risk import (
    Deny,
    InvalidOrder,
    OrderRequest,
    market_closed,
    pre_trade_decide,
    validate_client_order_id,
    validate_intent,
)
from stratbox.trading.selectors import column_count, exposure_read, model_columns, model_from_row
from stratbox.trading.services import live
from stratbox.trading.services.ledger import (
    UNREAD,
    fills_apply,
    order_mark_filled,
    position_lock_open,
)
from stratbox.trading.services.lifecycle import (
    LIVE_REAL,
    RESTING,
    expires_at_for,
    order_after_fill,
    reduce_only_qty,
)
from stratbox.trading.services.resting import orders_mark_to_market
from stratbox.trading.services.shadow import ShadowExposure, day_bounds, shadow_exposure_read, shadow_gate
from stratbox.trading.snapshot_cache import ledger_changed
from tenants.models import Tenant

__all__ = ["OrderResult", "client_order_id_for", "order_place", "orders_cancel_open", "orders_mark_to_market"]


@dataclass(frozen=True)
class OrderResult:
    order: Order | None
    status: str  # an OrderStatus value ("rejected" also for INVALID_ORDER, which stores no row)
    deny_code: str | None
    message: str
    duplicate: bool = False  # True when a retry returned the order placed earlier


def client_order_id_for(*, instance: StrategyInstance, tick_seq: int, n: int) -> str:
    """The id the engine gives the n-th order intent of a tick: `<instance uuid>-<tick seq>-<n>`."""
    return f"{instance.pk}-{tick_seq}-{n}"


def _result(order: Order, *, duplicate: bool = False, message: str = "") -> OrderResult:
    return OrderResult(
        order=order,
        status=order.status,
        deny_code=order.deny_code or None,
        message=message or order.deny_reason,
        duplicate=duplicate,
    )


def _existing(client_order_id: str, instance: StrategyInstance) -> OrderResult | None:
    order = Order.objects.filter(client_order_id=client_order_id).first()
    if order is None:
        return None
    if order.instance_id != instance.pk:  # cannot happen with the uuid prefix; refuse loudly if it does
        return OrderResult(
            None, OrderStatus.REJECTED, Deny.INVALID_ORDER, "client_order_id belongs to another instance"
        )
    return _result(order, duplicate=True, message="duplicate client_order_id: returning the existing order")


def _duplicate(client_order_id: str, instance: StrategyInstance) -> OrderResult:
    """The order that took `client_order_id` first (our INSERT found it taken)."""
    existing = _existing(client_order_id, instance)
    if existing is None:  # the conflicting row vanished: nothing sane to return
        raise IntegrityError(f"client_order_id {client_order_id} conflicts with no visible order")
    return existing


def _order_insert(order: Order) -> bool:
    """Insert a new order; False, writing nothing, when its client_order_id is already taken.

    `ON CONFLICT DO NOTHING` rather than a savepoint around an INSERT that may fail: one statement,
    and a concurrent retry's uncommitted insert is waited for, then seen as the conflict it is.
    The values are prepared exactly as the ORM's INSERT prepares them.
    """
    sql, values = row_write(order)
    with connection.cursor() as cursor:
        cursor.execute(sql + " ON CONFLICT (client_order_id) DO NOTHING", values)
        inserted = cursor.rowcount == 1
    if inserted:
        mark_saved(order)
        ledger_changed([order.instance_id])
    return inserted


def _new_order(instance: StrategyInstance, req: OrderRequest, now: datetime, **fields: Any) -> Order:
    return Order(
        tenant_id=instance.tenant_id,
        instance_id=instance.pk,
        account_id=instance.account_id,
        market_id=instance.market_id,
        client_order_id=req.client_order_id,
        version_id=instance.version_id,
        side=req.side,
        type=req.type,
        qty=req.qty,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        tif=req.tif,
        expires_at=expires_at_for(req.tif, req.expire_at, now, session_parse(instance.market.trading_hours)),
        reduce_only=req.reduce_only,
        bracket=req.bracket,
        tag=req.tag,
        created_at=now,
        **fields,
    )


def _fills_on_arrival(req: OrderRequest, quote: Any) -> bool:
    """Whether the paper broker may fill this order now (the fill model on the quote's side price)."""
    if not quote_is_valid(quote):
        return False
    side_price = Decimal(str(quote["ask"] if req.side == OrderSide.BUY else quote["bid"]))
    price, _ = fm.on_arrival(req.side, req.type, req.limit_price, req.stop_price, side_price, 0)
    return price is not None


def _unfilled_end(order: Order, now: datetime) -> None:
    """An IOC / FOK order ends cancelled with whatever did not fill at once (an IOC may have filled
    in part: `filled_qty` keeps it; a FOK fills whole or not at all)."""
    if order.tif in (TimeInForce.IOC, TimeInForce.FOK) and order.filled_qty < order.qty:
        order.status = OrderStatus.CANCELLED
        order.cancelled_at = now
        order.deny_reason = f"{order.tif}: not filled at once"


def _place_shadow(
    *,
    instance: StrategyInstance,
    req: OrderRequest,
    quote: Any,
    now: datetime,
    reason: str,
    broker: PaperBroker,
    position: Position | None = UNREAD,
    allow_short: bool = False,
    exposure: ShadowExposure | None = None,
) -> OrderResult:
    """Observe mode: record what would have been placed and fill it into the shadow ledger.

    Runs inside the caller's transaction. `position` is the open shadow position, already locked,
    when the caller read it (by default it is locked and read here, and only if the order fills).
    The paper broker's fills are a pure computation, so they are known before the INSERT and the
    order row is written once, complete.
    """
    order = _new_order(
        instance,
        req,
        now,
        status=OrderStatus.SHADOW,
        is_shadow=True,
        deny_code=Deny.MODE_OBSERVE,
        deny_reason=reason,
    )
    closed = market_closed(instance.market, now)  # outside trading hours: a denied shadow
    if closed is None and not quote_is_valid(quote):
        if not _order_insert(order):
            return _duplicate(req.client_order_id, instance)
        return _result(order, message=reason + "; no quote, so it was not filled virtually")
    if closed is None and position is UNREAD:
        position = position_lock_open(order)
    gate = closed or shadow_gate(
        req, position, quote, broker, allow_short, exposure or shadow_exposure_read(instance, now)
    )
    if gate is not None:  # the gate would deny it: a denied shadow, with the gate's code
        order.status, order.deny_code, order.deny_reason = (
            OrderStatus.REJECTED,
            gate[0],
            f"{reason}; {gate[1]}"[:300],
        )
        if not _order_insert(order):
            return _duplicate(req.client_order_id, instance)
        return _result(order)
    if req.reduce_only:
        order.qty = reduce_only_qty(req.side, req.qty, position)
        if order.qty <= 0:
            order.qty = req.qty
            order.cancelled_at = now  # never fills: out of the resting set
            order.deny_reason = f"{reason}; reduce-only: no shadow position to reduce"
            if not _order_insert(order):
                return _duplicate(req.client_order_id, instance)
            return _result(order)
    fills = broker.submit(order, quote)
    message = reason
    if fills:
        order_mark_filled(order, fills, now)
    if (
        order.tif in (TimeInForce.IOC, TimeInForce.FOK)
        and order.filled_qty < order.qty
        and broker.fill_timing != "next_open"
    ):
        order.cancelled_at = now  # the rest never fills: out of the resting set
        order.deny_reason = message = f"{reason}; {order.tif}: not filled at once"
    if not _order_insert(order):
        return _duplicate(req.client_order_id, instance)
    held_before = position.qty if position is not None else ZERO
    last = fills_apply(order=order, specs=fills, account=None, now=now, position=position, order_written=True)
    if fills:
        order_after_fill(order, last, held_before, now)
    return _result(order, message=message)


def _reject(
    instance: StrategyInstance,
    req: OrderRequest,
    now: datetime,
    deny: Deny,
    message: str,
    est: Decimal | None,
) -> OrderResult:
    order = _new_order(
        instance,
        req,
        now,
        status=OrderStatus.REJECTED,
        deny_code=deny,
        deny_reason=message[:300],
        est_price=est,
    )
    if not _order_insert(order):
        return _duplicate(req.client_order_id, instance)
    return _result(order)


_SHADOW_READ_SQL = """
SELECT i.mode, t.killed_at, a.slippage_bps, a.fee_bps, a.fee_fixed, a.fill_timing, a.allow_short,
  i.capital_per_trade, i.max_positions, i.max_position_size, i.total_capital, i.max_daily_loss,
  (SELECT count(*) FROM trading_position WHERE instance_id = i.id AND is_shadow AND closed_at IS NULL),
  (SELECT sum(abs(cost_basis)) FROM trading_position WHERE instance_id = i.id AND is_shadow
     AND closed_at IS NULL),
  (SELECT sum(realized_pnl) FROM trading_fill WHERE instance_id = i.id AND is_shadow
     AND ts >= %s AND ts < %s),
  {position},
  a.max_volume_fraction
FROM instances_strategyinstance i
JOIN tenants_tenant t ON t.id = i.tenant_id
JOIN trading_account a ON a.id = i.account_id
LEFT JOIN LATERAL (SELECT * FROM trading_position WHERE instance_id = i.id AND market_id = i.market_id
  AND is_shadow AND closed_at IS NULL ORDER BY opened_at DESC LIMIT 1 {lock}) p ON true
WHERE i.id = %s
"""
SHADOW_LIMITS = ("capital_per_trade", "max_positions", "max_position_size", "total_capital", "max_daily_loss")
ZERO = Decimal(0)
_SHADOW_READ = {
    lock: _SHADOW_READ_SQL.format(position=model_columns(Position, "p"), lock="FOR UPDATE" if lock else "")
    for lock in (True, False)
}
_LOCK_SQL_TEMPLATE = """
SELECT {tenant}, {account}
FROM (SELECT * FROM tenants_tenant WHERE id = %s FOR UPDATE) t
CROSS JOIN LATERAL (SELECT * FROM trading_account WHERE id = %s AND t.id IS NOT NULL FOR UPDATE) a
"""
_LOCK_SQL = _LOCK_SQL_TEMPLATE.format(tenant=model_columns(Tenant, "t"), account=model_columns(Account, "a"))


def _lock_tenant_and_account(instance: StrategyInstance) -> tuple[Tenant, Account]:
    """`SELECT ... FOR UPDATE` the instance's tenant row, then its account row: one round trip.

    The account subquery is LATERAL on the locked tenant row, so PostgreSQL can only run it once
    the tenant row is locked: the same order as every other writer of capital (tenant, account).
    The ids come from the instance's identity, which never changes.
    """
    assert connection.in_atomic_block, "row locks need the caller's transaction"
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [instance.tenant_id, instance.account_id])
        row = cursor.fetchone()
    if row is None:
        raise Account.DoesNotExist(f"no tenant/account row for instance {instance.pk}")
    tenant = model_from_row(Tenant, row)
    account = model_from_row(Account, row, column_count(Tenant))
    assert tenant is not None and account is not None
    return tenant, account


def order_place(
    *,
    instance: StrategyInstance,
    intent: dict[str, Any],
    quote: dict[str, Any] | None,
    mode: str,
    now: datetime,
) -> OrderResult:
    """Place one untrusted order intent of `instance`; idempotent on its client_order_id.

    `mode` is what the engine believes; the database's mode is re-read and the more restrictive
    of the two wins (a host or a stale engine claiming `active` for an observing instance gets a
    shadow order). INVALID_ORDER stores no row (nothing trustworthy to store).

    A retry finds its client_order_id taken when it inserts its order (`_order_insert`) and gets
    the order placed the first time (`duplicate=True`), whatever has changed since.
    """
    try:
        coid = validate_client_order_id(
            instance=instance, value=intent.get("client_order_id") if type(intent) is dict else None
        )
    except InvalidOrder as exc:
        return OrderResult(None, OrderStatus.REJECTED, Deny.INVALID_ORDER, f"{exc.field}: {exc.message}")
    try:
        req = validate_intent(instance=instance, intent=intent)
    except InvalidOrder as exc:
        # A retry is answered with the order placed the first time, even if it no longer validates.
        existing = _existing(coid, instance)
        if existing is not None:
            return existing
        return OrderResult(None, OrderStatus.REJECTED, Deny.INVALID_ORDER, f"{exc.field}: {exc.message}")
    if mode != Mode.ACTIVE:
        return _place_not_active(instance=instance, req=req, quote=quote, now=now)
    result = _place_active(instance=instance, req=req, quote=quote, now=now)
    if live.order_needs_send(result.order):  # journaled (committed): now its one send to the venue
        assert result.order is not None
        return _result(live.order_send_after_commit(result.order), duplicate=result.duplicate)
    return result


def _place_not_active(
    *, instance: StrategyInstance, req: OrderRequest, quote: dict[str, Any] | None, now: datetime
) -> OrderResult:
    """The engine does not claim active: no capital moves, so no tenant lock. Off and the kill
    switch store a denial; anything else is a shadow order."""
    lock_position = _fills_on_arrival(req, quote)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_SHADOW_READ[lock_position], [*day_bounds(now), instance.pk])
            row = cursor.fetchone()
        if row is None:
            raise StrategyInstance.DoesNotExist(f"instance {instance.pk} does not exist")
        mode, killed_at, slippage_bps, fee_bps, fee_fixed, fill_timing, allow_short = row[:7]
        if mode == Mode.OFF:
            return _reject(instance, req, now, Deny.MODE_OFF, "the instance is off", None)
        if killed_at is not None:
            return _reject(instance, req, now, Deny.KILL_SWITCH, "the tenant's kill switch is on", None)
        return _place_shadow(
            instance=instance,
            req=req,
            quote=quote,
            now=now,
            reason="observe mode: recorded as a shadow order, never sent",
            broker=PaperBroker.for_params(slippage_bps, fee_bps, fee_fixed, fill_timing, row[-1]),
            position=model_from_row(Position, row, 15),  # locked when it may fill now
            allow_short=allow_short,
            exposure=ShadowExposure(
                dict(zip(SHADOW_LIMITS, row[7:12], strict=True)), row[12], row[13] or ZERO, row[14] or ZERO
            ),
        )


def _place_active(
    *, instance: StrategyInstance, req: OrderRequest, quote: dict[str, Any] | None, now: datetime
) -> OrderResult:
    """Lock tenant then account, read the instance and the gate's aggregates in one statement under
    those locks, decide, then write the order and its fills in the same transaction."""
    with transaction.atomic():
        tenant, account = _lock_tenant_and_account(instance)
        fresh, exposure = exposure_read(
            instance_id=instance.pk,
            tenant_id=tenant.pk,
            account_id=account.pk,
            market_id=instance.market_id,
            side=req.side,
            now=now,
            with_instance=True,
        )
        assert fresh is not None
        fresh.tenant, fresh.account = tenant, account
        fresh.market = instance.market  # identity: the caller's row (validate_intent read it)
        if fresh.mode == Mode.OFF:
            return _reject(fresh, req, now, Deny.MODE_OFF, "the instance is off", None)
        if tenant.killed_at is not None:
            return _reject(fresh, req, now, Deny.KILL_SWITCH, "the tenant's kill switch is on", None)
        if fresh.mode == Mode.OBSERVE:
            return _place_shadow(
                instance=fresh,
                req=req,
                quote=quote,
                now=now,
                reason="the database says observe (the caller claimed active): shadow order, never sent",
                broker=PaperBroker.for_account(account),
                allow_short=account.allow_short,
            )
        decision = pre_trade_decide(
            instance=fresh, order_request=req, quote=quote, now=now, exposure=exposure
        )
        if decision.deny is not None:
            return _reject(fresh, req, now, decision.deny, decision.message, decision.est_price)
        assert quote is not None
        broker = broker_for_account(account)
        if account.kind == AccountKind.LIVE:
            problem = live.live_intent_problem(type=req.type, bracket=req.bracket)
            if problem is not None:
                return _reject(fresh, req, now, Deny.VENUE_REJECTED, problem, decision.est_price)
        order = _new_order(fresh, req, now, status=OrderStatus.ACCEPTED, est_price=decision.est_price)
        if req.reduce_only:
            order.qty = reduce_only_qty(req.side, req.qty, exposure.position)
            if order.qty <= 0:
                order.qty, order.status, order.cancelled_at = req.qty, OrderStatus.CANCELLED, now
                order.deny_reason = "reduce-only: no position to reduce"
                if not _order_insert(order):
                    return _duplicate(req.client_order_id, fresh)
                return _result(order)
        # The paper broker's fills are a pure computation: known before the INSERT, so the order
        # row is written once, complete. A live order is journaled `new` here and sent by
        # `order_place` once this transaction has committed (`services.live`).
        simulated = isinstance(broker, PaperBroker)
        if account.kind == AccountKind.LIVE:
            order.status = OrderStatus.NEW
            if not _order_insert(order):
                return _duplicate(req.client_order_id, fresh)
            return _result(order)
        fills = broker.submit(order, quote) if simulated else []
        if fills:
            order_mark_filled(order, fills, now)
        if simulated and broker.fill_timing != "next_open":
            _unfilled_end(order, now)
        if not _order_insert(order):
            return _duplicate(req.client_order_id, fresh)
        if not simulated:
            fills = broker.submit(order, quote)
        held_before = exposure.position.qty if exposure.position is not None else ZERO
        last = fills_apply(
            order=order,
            specs=fills,
            account=account,
            now=now,
            position=exposure.position,
            order_written=simulated,
        )
        if fills:
            order_after_fill(order, last, held_before, now)
        return _result(order)


def orders_cancel_open(*, instance: StrategyInstance, now: datetime | None = None) -> int:
    """Cancel the instance's resting orders (real and shadow); returns how many were cancelled."""
    now = now or timezone.now()
    open_orders = Order.objects.filter(RESTING, instance=instance).exclude(LIVE_REAL)
    with transaction.atomic():
        for order in open_orders.select_for_update().filter(is_shadow=False):
            broker_for_account(order.account).cancel(order)
        ledger_changed([instance.pk])
        count = open_orders.update(status=OrderStatus.CANCELLED, cancelled_at=now)
    # Live orders are cancelled at their venue, outside the transaction.
    at_venue = list(
        Order.objects.filter(RESTING, LIVE_REAL, instance=instance).select_related("account", "market")
    )
    return count + (
        live.orders_cancel_live(at_venue, reason="the instance was turned off") if at_venue else 0
    )
