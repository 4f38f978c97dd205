"""Writes for trading: placing orders (idempotent, under row locks), fills, the ledger, accounts.

The one rule that matters: every write that can change deployed capital or cash (an active order,
a resting order's fill) runs in ONE transaction that first locks the tenant row and then the
account row (`SELECT ... FOR UPDATE`, always in that order, so concurrent ticks queue instead of
deadlocking), re-reads the instance, runs the risk gate and applies the fill. Two ticks of one
tenant therefore see each other's orders and can never exceed a limit together.

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

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_is_valid, quotes_get_many
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
    pre_trade_evaluate,
    validate_client_order_id,
    validate_intent,
)
from stratbox.trading.selectors import (
    NOTIONAL,
    day_bounds,
    instance_deployed_capital,
    instance_realized_pnl,
    instance_recent_orders,
    instance_unrealized_pnl,
    position_unrealized_pnl,
)
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


def _order_insert(order: Order) -> Order | None:
    """Insert, or None when a concurrent retry inserted the same client_order_id first."""
    try:
        with transaction.atomic():
            order.save(force_insert=True)
    except IntegrityError:
        if Order.objects.filter(client_order_id=order.client_order_id).exists():
            return None
        raise
    return order


# --- the ledger ---------------------------------------------------------------------------


def _apply_fill(*, order: Order, spec: FillSpec, account: Account | None, now: datetime) -> Fill:
    """Book one fill: position (locked), fill row, order, and the cash (unless shadow)."""
    position = (
        Position.objects.select_for_update()
        .filter(
            instance_id=order.instance_id,
            market_id=order.market_id,
            is_shadow=order.is_shadow,
            closed_at__isnull=True,
        )
        .first()
    )
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
    position.save()
    fill = Fill.objects.create(
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
    order.fill_price = spec.price
    order.fee = spec.fee
    order.filled_at = now
    if not order.is_shadow:
        order.status = OrderStatus.FILLED
        assert account is not None
        account.balance += cash
        account.save(update_fields=["balance"])
    order.save(update_fields=["status", "fill_price", "fee", "filled_at"])
    return fill


def _new_order(instance: StrategyInstance, req: OrderRequest, now: datetime, **fields: Any) -> Order:
    return Order(
        tenant_id=instance.tenant_id,
        instance_id=instance.pk,
        account_id=instance.account_id,
        market_id=instance.market_id,
        client_order_id=req.client_order_id,
        side=req.side,
        type=req.type,
        qty=req.qty,
        limit_price=req.limit_price,
        tag=req.tag,
        created_at=now,
        **fields,
    )


def _place_shadow(
    *, instance: StrategyInstance, req: OrderRequest, quote: Any, now: datetime, reason: str
) -> OrderResult:
    """Observe mode: record what would have been placed and fill it into the shadow ledger."""
    order = _new_order(
        instance,
        req,
        now,
        status=OrderStatus.SHADOW,
        is_shadow=True,
        deny_code=Deny.MODE_OBSERVE,
        deny_reason=reason,
    )
    broker = PaperBroker.for_account(instance.account)
    with transaction.atomic():
        if _order_insert(order) is None:
            return _existing(req.client_order_id, instance)  # type: ignore[return-value]
        if not quote_is_valid(quote):
            return _result(order, message=reason + "; no quote, so it was not filled virtually")
        fills = broker.submit(order, quote)
        if fills and req.side == OrderSide.SELL:
            held = (
                Position.objects.filter(
                    instance_id=instance.pk,
                    market_id=instance.market_id,
                    is_shadow=True,
                    closed_at__isnull=True,
                )
                .values_list("qty", flat=True)
                .first()
            )
            if held is None or held < req.qty:
                # Long-only: a shadow sell beyond the shadow position is recorded but never filled.
                order.filled_at = None
                order.deny_reason = f"{reason}; not filled: sell exceeds the shadow position (long-only)"
                order.save(update_fields=["deny_reason"])
                return _result(order)
        for spec in fills:
            _apply_fill(order=order, spec=spec, account=None, now=now)
    return _result(order, message=reason)


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
    if _order_insert(order) is None:
        return _existing(req.client_order_id, instance)  # type: ignore[return-value]
    return _result(order)


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
    """
    try:
        coid = validate_client_order_id(
            instance=instance, value=intent.get("client_order_id") if type(intent) is dict else None
        )
    except InvalidOrder as exc:
        return OrderResult(None, OrderStatus.REJECTED, Deny.INVALID_ORDER, f"{exc.field}: {exc.message}")
    existing = _existing(coid, instance)
    if existing is not None:
        return existing
    try:
        req = validate_intent(instance=instance, intent=intent)
    except InvalidOrder as exc:
        return OrderResult(None, OrderStatus.REJECTED, Deny.INVALID_ORDER, f"{exc.field}: {exc.message}")

    with transaction.atomic():
        fresh = StrategyInstance.objects.select_related("tenant", "account", "market").get(pk=instance.pk)
        if fresh.mode == Mode.OFF:
            return _reject(fresh, req, now, Deny.MODE_OFF, "the instance is off", None)
        if fresh.tenant.killed_at is not None:
            return _reject(fresh, req, now, Deny.KILL_SWITCH, "the tenant's kill switch is on", None)
        if fresh.mode == Mode.OBSERVE or mode != Mode.ACTIVE:
            reason = "observe mode: recorded as a shadow order, never sent"
            if mode == Mode.ACTIVE:
                reason = "the database says observe (the caller claimed active): shadow order, never sent"
            return _place_shadow(instance=fresh, req=req, quote=quote, now=now, reason=reason)

        # Active: lock tenant, then account, then re-read the instance under the locks.
        tenant = Tenant.objects.select_for_update().get(pk=fresh.tenant_id)
        account = Account.objects.select_for_update().get(pk=fresh.account_id)
        fresh = StrategyInstance.objects.select_related("market").get(pk=instance.pk)
        fresh.tenant, fresh.account = tenant, account
        again = _existing(coid, fresh)  # a concurrent retry may have committed while we waited
        if again is not None:
            return again
        if fresh.mode == Mode.OBSERVE:
            return _place_shadow(
                instance=fresh, req=req, quote=quote, now=now, reason="observe mode: shadow order"
            )
        decision = pre_trade_evaluate(instance=fresh, order_request=req, quote=quote, now=now)
        if decision.deny is not None:
            return _reject(fresh, req, now, decision.deny, decision.message, decision.est_price)
        order = _new_order(fresh, req, now, status=OrderStatus.PENDING, est_price=decision.est_price)
        if _order_insert(order) is None:
            return _existing(coid, fresh)  # type: ignore[return-value]
        assert quote is not None
        for spec in broker_for_account(account).submit(order, quote):
            _apply_fill(order=order, spec=spec, account=account, now=now)
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


def orders_cancel_open(*, instance: StrategyInstance, now: datetime | None = None) -> int:
    """Cancel the instance's resting orders (real and shadow); returns how many were cancelled."""
    now = now or timezone.now()
    open_orders = Order.objects.filter(instance=instance, filled_at__isnull=True).filter(
        Q(status=OrderStatus.PENDING) | Q(status=OrderStatus.SHADOW, type=OrderType.LIMIT)
    )
    with transaction.atomic():
        for order in open_orders.select_for_update().filter(is_shadow=False):
            broker_for_account(order.account).cancel(order)
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
    """`instance_snapshot` for a whole batch of instances in five queries, whatever the batch size.

    The result for each instance (keyed by pk) equals `instance_snapshot(instance=, quote=quotes.get(
    instance.market_id))` at the same moment: positions, balances, realized (total and today's) P&L,
    resting buy notional and the 20 most recent orders are each read once for the batch (the recent
    orders with a LATERAL join on the (instance, -created_at) index). Read-only, no locks: the risk
    gate re-reads everything it enforces under its row locks.
    """
    if not instances:
        return {}
    ids = [i.pk for i in instances]
    shadow_of = {i.pk: i.mode != Mode.ACTIVE for i in instances}
    marks_by_market = {mid: m for mid, q in quotes.items() if (m := _mark(q)) is not None}

    positions: dict[Any, list[Position]] = {pk: [] for pk in ids}
    for p in Position.objects.filter(instance_id__in=ids, closed_at__isnull=True):
        if p.is_shadow == shadow_of[p.instance_id]:
            positions[p.instance_id].append(p)
    missing = {p.market_id for ps in positions.values() for p in ps} - set(marks_by_market)
    other_marks = (
        {mid: Decimal(str(q["price"])) for mid, q in quotes_get_many(list(missing)).items()}
        if missing
        else {}
    )

    balances = dict(
        Account.objects.filter(pk__in={i.account_id for i in instances}).values_list("pk", "balance")
    )
    start, end = day_bounds(timezone.now().date())
    realized: dict[tuple[Any, bool], tuple[Decimal, Decimal]] = {
        (row["instance_id"], row["is_shadow"]): (row["total"] or ZERO, row["today"] or ZERO)
        for row in Fill.objects.filter(instance_id__in=ids)
        .values("instance_id", "is_shadow")
        .annotate(total=Sum("realized_pnl"), today=Sum("realized_pnl", filter=Q(ts__gte=start, ts__lt=end)))
    }
    active_ids = [pk for pk in ids if not shadow_of[pk]]
    pending: dict[Any, Decimal] = {}
    if active_ids:
        pending = {
            row["instance_id"]: row["total"] or ZERO
            for row in Order.objects.filter(
                instance_id__in=active_ids,
                status=OrderStatus.PENDING,
                is_shadow=False,
                side=OrderSide.BUY,
            )
            .values("instance_id")
            .annotate(total=Sum(NOTIONAL))
        }
    recent: dict[Any, list[Order]] = {pk: [] for pk in ids}
    table = Order._meta.db_table
    for order in Order.objects.raw(
        f"SELECT o.* FROM unnest(%s::uuid[], %s::boolean[]) AS i(iid, shadow) "  # noqa: S608 - table name only
        f"CROSS JOIN LATERAL (SELECT * FROM {table} t WHERE t.instance_id = i.iid AND t.is_shadow = i.shadow "
        f"ORDER BY t.created_at DESC, t.id DESC LIMIT 20) o ORDER BY o.instance_id, o.created_at DESC, o.id DESC",
        [ids, [shadow_of[pk] for pk in ids]],
    ):
        recent[order.instance_id].append(order)

    out: dict[Any, dict[str, Any]] = {}
    for instance in instances:
        pk = instance.pk
        shadow = shadow_of[pk]
        mark = marks_by_market.get(instance.market_id)
        marks = {instance.market_id: mark} if mark is not None else {}
        own_positions = positions[pk]
        own = next((p for p in own_positions if p.market_id == instance.market_id), None)
        unrealized = (
            sum(
                (
                    position_unrealized_pnl(p, marks.get(p.market_id, other_marks.get(p.market_id)))
                    for p in own_positions
                ),
                ZERO,
            )
            if own_positions
            else ZERO
        )
        total, today = realized.get((pk, shadow), (ZERO, ZERO))
        cost = sum((p.cost_basis for p in own_positions), ZERO)
        deployed = cost if shadow else cost + pending.get(pk, ZERO)
        out[pk] = {
            "orders": [order_as_dict(o) for o in recent[pk]],
            "position": position_as_dict(own, mark) if own else None,
            "positions": [position_as_dict(p, marks.get(p.market_id)) for p in own_positions],
            "balance": str(balances.get(instance.account_id) or ZERO),
            "pnl": {"realized": str(total), "unrealized": str(unrealized), "today": str(today + unrealized)},
            "deployed_capital": str(deployed),
            "available_capital": str(max(ZERO, instance.total_capital - deployed)),
        }
    return out


def instance_daily_pnl(
    *, instance: StrategyInstance, day: date, shadow: bool = False, marks: dict[int, Decimal] | None = None
) -> Decimal:
    """Realized P&L of fills on `day` (UTC) plus, for today, the unrealized P&L of open positions."""
    realized = instance_realized_pnl(instance_id=instance.pk, shadow=shadow, day=day)
    if day != timezone.now().date():
        return realized
    return realized + instance_unrealized_pnl(instance_id=instance.pk, shadow=shadow, marks=marks)


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
