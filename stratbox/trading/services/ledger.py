"""The ledger: booking a fill into its position, the account's cash and the order, in one statement.

Every write to an instance's orders, fills or positions calls `snapshot_cache.ledger_changed`, so
the engine's cached snapshots of it are recomputed after the commit.

Ledger arithmetic (exact, 8 decimals), with signed positions (s = +1 for a buy, -1 for a sell; a
short has a negative qty and cost_basis): a fill that opens or grows the position adds s * qty to
its qty and s * notional to its cost_basis (realized_pnl = -fee); a fill against it first closes
min(qty, |held|), removing cost_basis * closed / |held| (all of it on a full close) and realizing
-s * closed * price - removed - fee, and any remainder opens the other side at the fill price.
The cash always moves by -s * notional - fee. Hence, per account:
balance = starting_balance - open cost_basis + sum(realized_pnl).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection

from stratbox.rows import mark_saved, row_write
from stratbox.trading.brokers import FillSpec
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import Account, Fill, Order, OrderSide, OrderStatus, Position
from stratbox.trading.snapshot_cache import ledger_changed

UNREAD: Any = object()  # `position` argument: not read yet, lock and read it here
_POSITION_UPDATE_FIELDS = ("qty", "cost_basis", "avg_price", "realized_pnl", "fees", "closed_at")
_ORDER_FILL_FIELDS = ("status", "fill_price", "fee", "filled_at", "filled_qty", "triggered")


def position_lock_open(order: Order) -> Position | None:
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


def order_mark_filled(order: Order, specs: list[FillSpec], now: datetime) -> None:
    """The order's fill fields after `specs` (what `fill_apply` writes to it, the last fill winning).

    A shadow order has no partially_filled status: its `filled_at` is set once it is filled whole,
    so one filled in part still rests (`lifecycle.RESTING`)."""
    order.fill_price = specs[-1].price
    order.fee = specs[-1].fee
    order.filled_qty = (order.filled_qty or 0) + sum((s.qty for s in specs), 0)
    done = order.filled_qty >= order.qty
    if not order.is_shadow:
        order.filled_at = now
        order.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
    elif done:
        order.filled_at = now


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


def fill_apply(
    *,
    order: Order,
    spec: FillSpec,
    account: Account | None,
    now: datetime,
    position: Position | None = UNREAD,
    order_written: bool = False,
    notify: bool = True,
) -> Fill:
    """Book one fill: position (locked), fill row, order, and the cash (unless shadow).

    The position, the fill, the account's balance and the order's fill fields are written by one
    statement (`_book`). `position`: the order's open position (or None) when the caller has
    already read it under a lock that keeps every other writer out (a real position is only
    written under its tenant's lock; a shadow one after `SELECT ... FOR UPDATE`); by default it
    is locked and read here. `order_written`: the order row was inserted with its fill fields
    already set (`order_mark_filled`).
    """
    if position is UNREAD:
        position = position_lock_open(order)
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
    sign = 1 if order.side == OrderSide.BUY else -1
    held = position.qty
    if held == 0 or (held > 0) == (sign > 0):  # opens or grows
        position.qty += sign * spec.qty
        position.cost_basis += sign * notional
        realized = -spec.fee
    else:
        closed = min(spec.qty, abs(held))
        removed = position.cost_basis if closed == abs(held) else q8(position.cost_basis * closed / abs(held))
        position.qty += sign * closed
        position.cost_basis -= removed
        realized = -sign * q8(closed * spec.price) - removed - spec.fee
        rest = spec.qty - closed
        if rest > 0:  # flips: the remainder opens the other side at the fill price
            position.qty += sign * rest
            position.cost_basis += sign * (notional - q8(closed * spec.price))
    cash = -sign * notional - spec.fee
    position.realized_pnl += realized
    position.fees += spec.fee
    if position.qty != 0:
        position.avg_price = q8(position.cost_basis / position.qty)
    else:
        position.closed_at = now
    writes = [row_write(position, None if position._state.adding else _POSITION_UPDATE_FIELDS)]
    if not order.is_shadow:
        assert account is not None
        account.balance += cash
        writes.append(row_write(account, ("balance",)))
    if not order_written:
        order_mark_filled(order, [spec], now)
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


def fills_apply(
    *,
    order: Order,
    specs: list[FillSpec],
    account: Account | None,
    now: datetime,
    position: Position | None,
    order_written: bool,
) -> Position | None:
    """`fill_apply` for each spec, handing the open position (as the previous fill left it) on.

    Only ever right after `_order_insert` wrote `order` in the same transaction: that insert already
    invalidated the instance's cached snapshot, now and after the commit (`ledger_changed`), and
    nothing reads a snapshot between the two, so the fills do not invalidate it again (two Redis
    round trips fewer per order, one of them under the tenant's lock). Returns the position as the
    last fill left it (closed or not), or `position` when there was no fill."""
    last = position
    for spec in specs:
        fill = fill_apply(
            order=order,
            spec=spec,
            account=account,
            now=now,
            position=position,
            order_written=order_written,
            notify=False,
        )
        last = fill.position
        position = fill.position if fill.position.closed_at is None else None
    return last
