"""An order's life after it is placed: bracket legs, one-cancels-other, reduce-only orders dying
with their position, expiry, and cancelling — the same rules as the backtester's broker
(`sandbox.simbroker`), on the ledger's rows. Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from sandbox import fillmodel as fm
from sandbox.sessions import Session
from stratbox.instances.models import StrategyInstance
from stratbox.rows import mark_saved, row_write
from stratbox.trading.brokers import broker_for_account
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import (
    OPEN_STATUSES,
    AccountKind,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from stratbox.trading.snapshot_cache import ledger_changed

# Orders that can still fill: real ones in an open status, shadow ones not yet filled.
RESTING = Q(status__in=OPEN_STATUSES) | Q(
    status=OrderStatus.SHADOW, filled_at__isnull=True, cancelled_at__isnull=True
)


def expires_at_for(
    tif: str, expire_at: float | None, now: datetime, session: Session | None = None
) -> datetime | None:
    """When an order expires: its own `expire_at` (unix seconds), else a DAY order at the close of
    the market's `session` (in its time zone), or at the next UTC midnight on an always-open market
    (as the backtester's broker), else never."""
    if expire_at is not None:
        return datetime.fromtimestamp(expire_at, tz=UTC)
    if tif == TimeInForce.DAY:
        ts = now.timestamp()
        return datetime.fromtimestamp(session.day_end(ts) if session else fm.day_end(ts), tz=UTC)
    return None


def _close(order: Order, status: str, now: datetime, reason: str) -> None:
    order.status = status
    order.cancelled_at = now
    order.deny_reason = reason[:300]
    order.save(update_fields=["status", "cancelled_at", "deny_reason"])


def order_after_fill(
    order: Order, position: Position | None, held_before: Decimal, now: datetime, qty: Decimal | None = None
) -> None:
    """What a fill sets off: the parent's bracket legs (attached, or grown by a further partial
    fill), the OCO sibling's end (or, after a partial fill of a leg, its shrinking by as much), and
    the end of reduce-only orders once their position is gone (closed, or flipped to the other side).

    `position`: the position as the fill left it; `held_before`: its signed qty before the fill;
    `qty`: the fill's quantity (None: the order's whole filled quantity, its first fill). Each step
    costs a statement only when it has something to do (a plain market order that leaves its
    position open costs none)."""
    changed = False
    filled = qty if qty is not None else order.filled_qty
    done = order.filled_qty >= order.qty
    if order.bracket and order.fill_price is not None:
        _legs_attach(order, filled, now)
        changed = True
    if order.parent_id is not None:
        changed = True
        siblings = Order.objects.filter(RESTING, parent_id=order.parent_id).exclude(pk=order.pk)
        if done:
            siblings.update(
                status=OrderStatus.CANCELLED, cancelled_at=now, deny_reason="OCO: the other leg filled"
            )
        else:  # one leg filled in part: the other covers that much less (as in backtests)
            siblings.update(qty=F("qty") - filled)
    gone = position is None or position.closed_at is not None
    flipped = not gone and held_before != 0 and (position.qty > 0) != (held_before > 0)  # type: ignore[union-attr]
    if gone or flipped:
        dying = Order.objects.filter(
            RESTING,
            instance_id=order.instance_id,
            market_id=order.market_id,
            is_shadow=order.is_shadow,
            reduce_only=True,
        )
        if done or not order.reduce_only:
            dying = dying.exclude(pk=order.pk)
        else:  # a reduce-only order cut to its position: the rest has nothing left to reduce
            order.status, order.cancelled_at = OrderStatus.CANCELLED, now
        if flipped:  # those against the new side still reduce it; the old side's go
            dying = dying.filter(side=order.side)
        changed = (
            bool(
                dying.update(
                    status=OrderStatus.CANCELLED,
                    cancelled_at=now,
                    deny_reason="reduce-only: its position is gone",
                )
            )
            or changed
        )
    if changed:
        ledger_changed([order.instance_id])


def _legs_attach(parent: Order, qty: Decimal, now: datetime) -> None:
    """The stop-loss (a stop) and take-profit (a limit) of a filled parent: reduce-only, GTC, for
    the quantity the parent filled, levels as prices or as a fraction of the (first) fill price.
    A further partial fill of the parent grows its resting legs by `qty` (the backtester's rule);
    a leg that is no longer resting (it filled) gets a new one for `qty`."""
    exit_side = OrderSide.SELL if parent.side == OrderSide.BUY else OrderSide.BUY
    assert parent.fill_price is not None
    existing: dict[str, list[tuple[Any, bool]]] = {}
    if parent.filled_qty > qty:  # not the first fill: there may be legs already
        resting = set(Order.objects.filter(RESTING, parent_id=parent.pk).values_list("pk", flat=True))
        for pk, leg in Order.objects.filter(parent_id=parent.pk).values_list("pk", "leg"):
            existing.setdefault(leg, []).append((pk, pk in resting))
    for leg, otype in (("sl", OrderType.STOP), ("tp", OrderType.LIMIT)):
        level = fm.bracket_level(parent.bracket.get(leg), float(parent.fill_price), parent.side, leg)
        if level is None:
            continue
        live = [pk for pk, is_resting in existing.get(leg, []) if is_resting]
        if live:
            Order.objects.filter(pk=live[0]).update(qty=F("qty") + qty)
            continue
        n = len(existing.get(leg, []))
        price = q8(Decimal(repr(level)))
        leg_order = Order(
            tenant_id=parent.tenant_id,
            instance_id=parent.instance_id,
            account_id=parent.account_id,
            market_id=parent.market_id,
            client_order_id=f"{parent.client_order_id}-{leg}" + (f"-{n + 1}" if n else ""),
            version_id=parent.version_id,
            side=exit_side,
            type=otype,
            qty=qty,
            limit_price=price if otype == OrderType.LIMIT else None,
            stop_price=price if otype == OrderType.STOP else None,
            reduce_only=True,
            parent=parent,
            leg=leg,
            tag=leg,
            is_shadow=parent.is_shadow,
            status=OrderStatus.SHADOW if parent.is_shadow else OrderStatus.ACCEPTED,
            created_at=now,
        )
        sql, values = row_write(leg_order)
        with connection.cursor() as cursor:
            cursor.execute(sql + " ON CONFLICT (client_order_id) DO NOTHING", values)
            if cursor.rowcount == 1:
                mark_saved(leg_order)


def reduce_only_qty(side: str, qty: Decimal, position: Position | None) -> Decimal:
    """What a reduce-only order may fill: at most the position, and only against it."""
    held = position.qty if position is not None and position.closed_at is None else Decimal(0)
    if held == 0 or (held > 0) == (side == OrderSide.BUY):
        return Decimal(0)
    return min(qty, abs(held))


# Real orders on live accounts rest at their venue, which fills and expires them: no simulation.
LIVE_REAL = Q(is_shadow=False, account__kind=AccountKind.LIVE)


def orders_expire(*, market_id: int, now: datetime) -> int:
    """Expire the market's resting orders whose time is up (real and shadow; not live ones)."""
    expiring = Order.objects.filter(RESTING, market_id=market_id, expires_at__lte=now).exclude(LIVE_REAL)
    ids = list(expiring.values_list("instance_id", flat=True).distinct())
    count = expiring.update(status=OrderStatus.EXPIRED, cancelled_at=now, deny_reason="expired")
    if count:
        ledger_changed(ids)
    return count


def order_cancel(*, instance: StrategyInstance, client_order_id: Any, now: datetime | None = None) -> bool:
    """Cancel one resting order of `instance` (real or shadow); False when it has none by that id
    (already filled, cancelled, expired — or another instance's, which it never touches)."""
    if type(client_order_id) is not str:
        return False
    now = now or timezone.now()
    with transaction.atomic():
        order = (
            Order.objects.select_for_update()
            .filter(RESTING, instance_id=instance.pk, client_order_id=client_order_id)
            .select_related("account")
            .first()
        )
        if order is None:
            return False
        live = not order.is_shadow and order.account.kind == AccountKind.LIVE
        if not live:
            if not order.is_shadow:
                broker_for_account(order.account).cancel(order)
            _close(order, OrderStatus.CANCELLED, now, "cancelled by the strategy")
            ledger_changed([instance.pk])
            return True
    # A live order is the venue's: it decides, asked outside the transaction.
    from stratbox.trading.services.live import order_cancel_live

    return order_cancel_live(order, reason="cancelled by the strategy")
