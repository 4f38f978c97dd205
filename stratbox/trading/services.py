"""Writes for trading: placing orders (idempotent, under row locks), fills, the ledger, accounts.

The one rule that matters: every write that can change deployed capital or cash (an active order,
a resting order's fill) runs in ONE transaction that first locks the tenant row and then the
account row (`SELECT ... FOR UPDATE`, always in that order, so concurrent ticks queue instead of
deadlocking), re-reads the instance, runs the risk gate and applies the fill. Two ticks of one
tenant therefore see each other's orders and can never exceed a limit together.

Every write to an instance's orders, fills or positions calls `snapshot_cache.ledger_changed`, so
the engine's cached snapshots of it are recomputed after the commit.

Ledger arithmetic (exact, 8 decimals): a buy adds qty and its notional to the position's
cost_basis and takes notional + fee from the balance; a sell removes cost_basis * sold/held
(all of it on a full close) and adds notional - fee to the balance; each fill's realized_pnl is
(notional - removed cost) - fee for a sell, and -fee for a buy. Hence, per account:
balance = starting_balance - open cost_basis + sum(realized_pnl).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_is_valid
from stratbox.rows import mark_saved, row_write
from stratbox.trading.brokers import FillSpec, PaperBroker, broker_for_account
from stratbox.trading.brokers.base import q8
from stratbox.trading.credentials import (
    credentials_encrypt,
    credentials_hint,
    credentials_rotate,
    credentials_validate,
)
from stratbox.trading.models import (
    Account,
    AccountKind,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
)
from stratbox.trading.risk import (
    Deny,
    InvalidOrder,
    OrderRequest,
    pre_trade_decide,
    validate_client_order_id,
    validate_intent,
)
from stratbox.trading.selectors import (
    column_count,
    exposure_read,
    instance_deployed_capital,
    instance_realized_and_open_positions,
    instance_realized_pnl,
    instance_recent_orders,
    instance_unrealized_pnl,
    model_columns,
    model_from_row,
    open_positions_unrealized_pnl,
    position_unrealized_pnl,
)
from stratbox.trading.snapshot_cache import instance_snapshots_cached, ledger_changed
from tenants.models import Tenant
from tenants.services import audit_record

ZERO = Decimal("0")


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


# --- the ledger ---------------------------------------------------------------------------

_UNREAD: Any = object()  # `position` argument: not read yet, lock and read it here
_POSITION_UPDATE_FIELDS = ("qty", "cost_basis", "avg_price", "realized_pnl", "fees", "closed_at")
_ORDER_FILL_FIELDS = ("status", "fill_price", "fee", "filled_at")


def _open_position_for_update(order: Order) -> Position | None:
    return (
        Position.objects.select_for_update()
        .filter(
            instance_id=order.instance_id,
            market_id=order.market_id,
            is_shadow=order.is_shadow,
            closed_at__isnull=True,
        )
        .first()
    )


def _mark_filled(order: Order, specs: list[FillSpec], now: datetime) -> None:
    """The order's fill fields after `specs` (what `_apply_fill` writes to it, the last fill winning)."""
    order.fill_price = specs[-1].price
    order.fee = specs[-1].fee
    order.filled_at = now
    if not order.is_shadow:
        order.status = OrderStatus.FILLED


def _book(fill: Fill, writes: list[tuple[str, list[Any]]], notify: bool = True) -> None:
    """Insert `fill` and run `writes` (single-row INSERTs / UPDATEs) in ONE statement.

    Data-modifying CTEs: every write runs to completion whatever the final SELECT reads; each must
    touch exactly one row (as `save(update_fields=...)` requires) or the booking fails loudly.
    """
    ctes, params = [], []
    for i, (sql, values) in enumerate(writes):
        ctes.append(f"w{i} AS ({sql} RETURNING 1)")
        params += values
    fill_sql, fill_values = row_write(fill)
    ctes.append(f"f AS ({fill_sql} RETURNING id)")
    params += fill_values
    touched_counts = [f"(SELECT count(*) FROM w{i})" for i in range(len(writes))]  # noqa: S608 - no input
    sql = f"WITH {', '.join(ctes)} SELECT {', '.join(['(SELECT id FROM f)', *touched_counts])}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fill_id, *touched = cursor.fetchone()
    if any(n != 1 for n in touched):
        raise DatabaseError(f"ledger write touched {touched} rows, expected one each")
    fill.pk = fill_id
    mark_saved(fill)
    if notify:
        ledger_changed([fill.instance_id])


def _apply_fill(
    *,
    order: Order,
    spec: FillSpec,
    account: Account | None,
    now: datetime,
    position: Position | None = _UNREAD,
    order_written: bool = False,
    notify: bool = True,
) -> Fill:
    """Book one fill: position (locked), fill row, order, and the cash (unless shadow).

    The position, the fill, the account's balance and the order's fill fields are written by one
    statement (`_book`). `position`: the order's open position (or None) when the caller has
    already read it under a lock that keeps every other writer out (a real position is only
    written under its tenant's lock; a shadow one after `SELECT ... FOR UPDATE`); by default it
    is locked and read here. `order_written`: the order row was inserted with its fill fields
    already set (`_mark_filled`).
    """
    if position is _UNREAD:
        position = _open_position_for_update(order)
    if position is None:
        position = Position(
            tenant_id=order.tenant_id,
            account_id=order.account_id,
            instance_id=order.instance_id,
            market_id=order.market_id,
            is_shadow=order.is_shadow,
            opened_at=now,
        )
    notional = q8(spec.qty * spec.price)
    if order.side == OrderSide.BUY:
        position.qty += spec.qty
        position.cost_basis += notional
        realized = -spec.fee
        cash = -(notional + spec.fee)
    else:
        if spec.qty > position.qty:
            raise ValueError("long-only ledger: sell exceeds the position")  # the gate prevents this
        removed = (
            position.cost_basis
            if spec.qty == position.qty
            else q8(position.cost_basis * spec.qty / position.qty)
        )
        position.qty -= spec.qty
        position.cost_basis -= removed
        realized = notional - removed - spec.fee
        cash = notional - spec.fee
    position.realized_pnl += realized
    position.fees += spec.fee
    if position.qty > 0:
        position.avg_price = q8(position.cost_basis / position.qty)
    else:
        position.closed_at = now
    writes = [row_write(position, None if position._state.adding else _POSITION_UPDATE_FIELDS)]
    if not order.is_shadow:
        assert account is not None
        account.balance += cash
        writes.append(row_write(account, ("balance",)))
    if not order_written:
        _mark_filled(order, [spec], now)
        writes.append(row_write(order, _ORDER_FILL_FIELDS))
    fill = Fill(
        order=order,
        tenant_id=order.tenant_id,
        instance_id=order.instance_id,
        account_id=order.account_id,
        market_id=order.market_id,
        position=position,
        side=order.side,
        qty=spec.qty,
        price=spec.price,
        fee=spec.fee,
        realized_pnl=realized,
        is_shadow=order.is_shadow,
        ts=now,
    )
    _book(fill, writes, notify)
    mark_saved(position)
    return fill


def _apply_fills(
    *,
    order: Order,
    specs: list[FillSpec],
    account: Account | None,
    now: datetime,
    position: Position | None,
    order_written: bool,
) -> None:
    """`_apply_fill` for each spec, handing the open position (as the previous fill left it) on.

    Only ever right after `_order_insert` wrote `order` in the same transaction: that insert already
    invalidated the instance's cached snapshot, now and after the commit (`ledger_changed`), and
    nothing reads a snapshot between the two, so the fills do not invalidate it again (two Redis
    round trips fewer per order, one of them under the tenant's lock)."""
    for spec in specs:
        fill = _apply_fill(
            order=order,
            spec=spec,
            account=account,
            now=now,
            position=position,
            order_written=order_written,
            notify=False,
        )
        position = fill.position if fill.position.closed_at is None else None


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
        tag=req.tag,
        created_at=now,
        **fields,
    )


def _fills_on_arrival(req: OrderRequest, quote: Any) -> bool:
    """Whether the paper broker fills this order now (a market order, or a limit the quote crosses)."""
    if not quote_is_valid(quote):
        return False
    return req.type != OrderType.LIMIT or PaperBroker.crosses(req.side, req.limit_price, quote)  # type: ignore[arg-type]


def _place_shadow(
    *,
    instance: StrategyInstance,
    req: OrderRequest,
    quote: Any,
    now: datetime,
    reason: str,
    broker: PaperBroker,
    position: Position | None = _UNREAD,
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
    if not quote_is_valid(quote):
        if not _order_insert(order):
            return _duplicate(req.client_order_id, instance)
        return _result(order, message=reason + "; no quote, so it was not filled virtually")
    fills = broker.submit(order, quote)
    message = reason
    if fills:
        if position is _UNREAD:
            position = _open_position_for_update(order)
        if req.side == OrderSide.SELL and (position is None or position.qty < req.qty):
            # Long-only: a shadow sell beyond the shadow position is recorded but never filled.
            order.deny_reason = message = (
                f"{reason}; not filled: sell exceeds the shadow position (long-only)"
            )
            fills = []
        else:
            _mark_filled(order, fills, now)
    if not _order_insert(order):
        return _duplicate(req.client_order_id, instance)
    _apply_fills(order=order, specs=fills, account=None, now=now, position=position, order_written=True)
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
SELECT i.mode, t.killed_at, a.slippage_bps, a.fee_bps, {position}
FROM instances_strategyinstance i
JOIN tenants_tenant t ON t.id = i.tenant_id
JOIN trading_account a ON a.id = i.account_id
LEFT JOIN LATERAL (SELECT * FROM trading_position WHERE instance_id = i.id AND market_id = i.market_id
  AND is_shadow AND closed_at IS NULL ORDER BY opened_at DESC LIMIT 1 {lock}) p ON true
WHERE i.id = %s
"""
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
    return _place_active(instance=instance, req=req, quote=quote, now=now)


def _place_not_active(
    *, instance: StrategyInstance, req: OrderRequest, quote: dict[str, Any] | None, now: datetime
) -> OrderResult:
    """The engine does not claim active: no capital moves, so no tenant lock. Off and the kill
    switch store a denial; anything else is a shadow order."""
    lock_position = _fills_on_arrival(req, quote)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_SHADOW_READ[lock_position], [instance.pk])
            row = cursor.fetchone()
        if row is None:
            raise StrategyInstance.DoesNotExist(f"instance {instance.pk} does not exist")
        mode, killed_at, slippage_bps, fee_bps = row[:4]
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
            broker=PaperBroker.for_params(slippage_bps, fee_bps),
            position=model_from_row(Position, row, 4) if lock_position else _UNREAD,
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
            )
        decision = pre_trade_decide(
            instance=fresh, order_request=req, quote=quote, now=now, exposure=exposure
        )
        if decision.deny is not None:
            return _reject(fresh, req, now, decision.deny, decision.message, decision.est_price)
        assert quote is not None
        broker = broker_for_account(account)
        order = _new_order(fresh, req, now, status=OrderStatus.PENDING, est_price=decision.est_price)
        # The paper broker's fills are a pure computation: known before the INSERT, so the order
        # row is written once, complete. Any other broker is only called once the order is stored.
        simulated = isinstance(broker, PaperBroker)
        fills = broker.submit(order, quote) if simulated else []
        if fills:
            _mark_filled(order, fills, now)
        if not _order_insert(order):
            return _duplicate(req.client_order_id, fresh)
        if not simulated:
            fills = broker.submit(order, quote)
        _apply_fills(
            order=order,
            specs=fills,
            account=account,
            now=now,
            position=exposure.position,
            order_written=simulated,
        )
        return _result(order)


def orders_mark_to_market(*, market_id: int, quote: dict[str, Any], now: datetime) -> list[Order]:
    """Fill the resting limit orders (real and shadow) of a market that `quote` crosses."""
    if not quote_is_valid(quote):
        return []
    ask, bid = Decimal(str(quote["ask"])), Decimal(str(quote["bid"]))
    crossing = Q(side=OrderSide.BUY, limit_price__gte=ask) | Q(side=OrderSide.SELL, limit_price__lte=bid)
    candidates = list(
        Order.objects.filter(
            crossing,
            market_id=market_id,
            type=OrderType.LIMIT,
            filled_at__isnull=True,
            status__in=[OrderStatus.PENDING, OrderStatus.SHADOW],
        )
        .order_by("created_at", "id")
        .values_list("pk", "is_shadow", "tenant_id", "account_id")
    )
    filled: list[Order] = []
    for order_id, is_shadow, tenant_id, account_id in candidates:
        with transaction.atomic():
            account = None
            if not is_shadow:
                tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
                account = Account.objects.select_for_update().get(pk=account_id)
                if tenant.killed_at is not None:
                    continue  # a killed tenant trades nothing, not even resting orders
            order = Order.objects.select_for_update().filter(pk=order_id, filled_at__isnull=True).first()
            if order is None or order.status not in (OrderStatus.PENDING, OrderStatus.SHADOW):
                continue
            broker = (
                broker_for_account(account)
                if account
                else PaperBroker.for_account(Account.objects.get(pk=account_id))
            )
            fills = broker.fill_resting(order, quote)
            if not fills:
                continue
            position = Position.objects.filter(
                instance_id=order.instance_id,
                market_id=market_id,
                is_shadow=is_shadow,
                closed_at__isnull=True,
            ).first()
            spec = fills[0]
            if order.side == OrderSide.SELL and (position is None or position.qty < spec.qty):
                if not is_shadow:
                    _deny_resting(
                        order,
                        Deny.INSUFFICIENT_POSITION,
                        "the position was reduced before the sell filled",
                        now,
                    )
                continue
            if (
                order.side == OrderSide.BUY
                and account is not None
                and q8(spec.qty * spec.price) + spec.fee > account.balance
            ):
                _deny_resting(
                    order, Deny.INSUFFICIENT_BALANCE, "balance too low when the limit was crossed", now
                )
                continue
            _apply_fill(order=order, spec=spec, account=account, now=now)
            filled.append(order)
    return filled


def _deny_resting(order: Order, deny: Deny, reason: str, now: datetime) -> None:
    order.status = OrderStatus.REJECTED
    order.deny_code = deny
    order.deny_reason = reason
    order.cancelled_at = now
    order.save(update_fields=["status", "deny_code", "deny_reason", "cancelled_at"])
    ledger_changed([order.instance_id])


def orders_cancel_open(*, instance: StrategyInstance, now: datetime | None = None) -> int:
    """Cancel the instance's resting orders (real and shadow); returns how many were cancelled."""
    now = now or timezone.now()
    open_orders = Order.objects.filter(instance=instance, filled_at__isnull=True).filter(
        Q(status=OrderStatus.PENDING) | Q(status=OrderStatus.SHADOW, type=OrderType.LIMIT)
    )
    with transaction.atomic():
        for order in open_orders.select_for_update().filter(is_shadow=False):
            broker_for_account(order.account).cancel(order)
        ledger_changed([instance.pk])
        return open_orders.update(status=OrderStatus.CANCELLED, cancelled_at=now)


# --- snapshots and stats ------------------------------------------------------------------


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
        "status": order.status,
        "filled": order.filled_at is not None,
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
        else sum((p.cost_basis for p in positions), ZERO)
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


def instance_snapshots_many(
    *, instances: list[StrategyInstance], quotes: dict[int, dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """`instance_snapshot` for a whole batch of instances in five statements, whatever the batch size.

    Each result (keyed by pk) equals `instance_snapshot(instance=, quote=quotes.get(
    instance.market_id))` at the same moment (tested): positions, realized P&L (total and today's),
    resting buy notional and the 20 most recent orders (a LATERAL join on the (instance,
    -created_at) index) are each read once for the batch, then the balances. The engine reads the
    same through `snapshot_cache.instance_snapshots_cached`, which skips the first four for
    instances whose ledger did not change. Read-only, no locks: the risk gate re-reads everything
    it enforces under its row locks.
    """
    return instance_snapshots_cached(instances=instances, quotes=quotes, use_cache=False)


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


# --- accounts -----------------------------------------------------------------------------


@transaction.atomic
def account_create(
    *,
    tenant: Tenant,
    actor: Any,
    name: str,
    starting_balance: Decimal,
    currency: str = "USD",
    slippage_bps: Decimal | None = None,
    fee_bps: Decimal | None = None,
    kind: str = AccountKind.PAPER,
    broker: str = "",
    credentials: dict[str, str] | None = None,
) -> Account:
    """Create an account whose cash starts at `starting_balance`.

    `paper` (default): the simulated broker. `live`: an exchange/broker adapter named by `broker`,
    with optional `credentials` that are encrypted before they touch the database (refused with
    `CredentialsUnavailable` when no key is configured). A live account trades only for instances
    with a current staff approval (governance); the audit log never sees the credentials.
    """
    if kind not in AccountKind.values:
        raise ValueError(f"unknown account kind {kind!r}")
    if kind == AccountKind.PAPER and (credentials or broker):
        raise ValueError("paper accounts take no broker or credentials")
    ciphertext = hint = ""
    if credentials:
        clean = credentials_validate(credentials)
        ciphertext, hint = credentials_encrypt(clean), credentials_hint(clean)
    account = Account.objects.create(
        tenant=tenant,
        name=name,
        kind=kind,
        currency=currency,
        starting_balance=starting_balance,
        balance=starting_balance,
        slippage_bps=slippage_bps,
        fee_bps=fee_bps,
        broker=broker,
        credentials_ciphertext=ciphertext,
        credentials_hint=hint,
        credentials_updated_at=timezone.now() if ciphertext else None,
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="account.create",
        target=account,
        after={
            "name": name,
            "kind": kind,
            "starting_balance": str(starting_balance),
            "currency": currency,
            **({"broker": broker, "has_credentials": bool(ciphertext)} if kind == AccountKind.LIVE else {}),
        },
    )
    return account


def account_credentials_rotate() -> int:
    """Re-encrypt every stored credential under the newest key (key rotation); returns the count."""
    rotated = 0
    for account in Account.objects.exclude(credentials_ciphertext="").only("pk", "credentials_ciphertext"):
        new = credentials_rotate(account.credentials_ciphertext)
        if new != account.credentials_ciphertext:
            Account.objects.filter(pk=account.pk).update(credentials_ciphertext=new)
            rotated += 1
    return rotated
