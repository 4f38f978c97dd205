"""Every status change of an order goes through here: `order_transition` (one order),
`orders_transition` (every order a queryset selects) and `order_insert` (a new order's row).

Each change becomes an `OrderEvent` row (from, to, filled qty after it, reason, deny code, when)
written by the *same statement* as the order's own write, and a push to the tenant's live feed
after the commit (`stratbox.trading.order_events`). So an order placement that is accepted and
filled at once is still one INSERT (the order and its two events), a resting fill is still one
booking statement (`ledger._book`), and a quiet tick writes nothing.

An order's events start at `new`: an order inserted in another status (a paper order is stored
already `accepted`, a denial `rejected`, an observe-mode order `shadow`) records its birth as
new -> that status. Statuses that do not change make no event (a second partial fill changes the
filled qty, not the status: its record is the fill row).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import QuerySet

from stratbox.rows import mark_saved, row_write
from stratbox.trading import order_events
from stratbox.trading.models import Order, OrderEvent, OrderStatus
from stratbox.trading.snapshot_cache import ledger_changed

# Statuses that end an order without a fill: they stamp `cancelled_at` (its end time).
ENDS = frozenset({OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED})
_PENDING = "_pending_order_events"  # an order's recorded, not yet written events (in its __dict__)
_UPDATE_FIELDS = ("status", "deny_code", "deny_reason", "cancelled_at")
_EVENT_FIELDS = [f for f in OrderEvent._meta.local_concrete_fields if f is not OrderEvent._meta.auto_field]
_EVENT_COLUMNS = ", ".join(f'"{f.column}"' for f in _EVENT_FIELDS)
_EVENT_TABLE = OrderEvent._meta.db_table


@dataclass
class EventWrite:
    """The pending events of one order as one multi-row INSERT (`sql`, `values`, `count` rows)."""

    sql: str
    values: list[Any]
    count: int
    order: Order
    events: list[OrderEvent] = field(default_factory=list)

    def announce(self) -> None:
        """Push the events after the commit (call once the statement has written them)."""
        o = self.order
        order_events.announce(
            o.tenant_id,
            o.instance_id,
            [
                order_events.payload(
                    order_id=o.pk,
                    client_order_id=o.client_order_id,
                    is_shadow=o.is_shadow,
                    from_status=e.from_status,
                    to_status=e.to_status,
                    filled_qty=e.filled_qty,
                    deny_code=e.deny_code,
                    reason=e.reason,
                    at=e.at,
                )
                for e in self.events
            ],
        )


def _event(
    order: Order,
    from_status: str,
    to_status: str,
    at: datetime,
    reason: str,
    deny_code: str,
    filled: Any = None,
) -> OrderEvent:
    return OrderEvent(
        order_id=order.pk,
        tenant_id=order.tenant_id,
        from_status=from_status,
        to_status=to_status,
        filled_qty=(order.filled_qty or 0) if filled is None else filled,
        deny_code=deny_code,
        reason=reason[:300],
        at=at,
    )


def _pending(order: Order, *, changing: bool = False) -> list[OrderEvent]:
    """The order's unwritten events; a new order's first call records its birth (new -> status).

    `changing`: called by a transition, so the birth happened before whatever the caller changed
    (a fill's quantity): it filled nothing yet. Otherwise (at the insert) it is born as it is."""
    pending: list[OrderEvent] | None = order.__dict__.get(_PENDING)
    if pending is None:
        pending = order.__dict__[_PENDING] = []
        if order._state.adding and order.status not in ("", OrderStatus.NEW):
            pending.append(
                _event(
                    order,
                    OrderStatus.NEW,
                    order.status,
                    order.created_at,
                    order.deny_reason,
                    order.deny_code if order.status in (OrderStatus.REJECTED, OrderStatus.SHADOW) else "",
                    filled=0 if changing else None,
                )
            )
    return pending


def order_transition(
    order: Order,
    to_status: str,
    *,
    at: datetime,
    reason: str | None = None,
    deny_code: str | None = None,
    save: bool = True,
    fields: tuple[str, ...] = (),
) -> bool:
    """Move `order` to `to_status`, recording the event; False (nothing recorded) if it is there already.

    Sets `status`, `deny_reason` (when `reason` is given), `deny_code` (when given) and, for an end
    without a fill (cancelled, expired, rejected), `cancelled_at = at` unless already set.

    - A stored order with `save=True` (the default) is written at once: ONE statement updates
      those fields plus `fields` (others the caller changed, e.g. `("triggered",)`) and inserts
      the event; the push follows the commit. Call it inside the transaction that holds the
      order's row lock.
    - A new order (not inserted yet) keeps the event until `order_insert` writes both.
    - `save=False` on a stored order: the caller writes the order's row itself and must write the
      pending events in the same statement (`events_write(order)`, as `ledger.fill_apply` does).
    """
    from_status = order.status or OrderStatus.NEW
    if from_status == to_status:
        return False
    pending = _pending(order, changing=True)
    order.status = to_status
    if reason is not None:
        order.deny_reason = reason[:300]
    if deny_code is not None:
        order.deny_code = deny_code
    if to_status in ENDS and order.cancelled_at is None:
        order.cancelled_at = at
    code = (
        deny_code if deny_code is not None else (order.deny_code if to_status == OrderStatus.REJECTED else "")
    )
    pending.append(_event(order, from_status, to_status, at, reason or "", code))
    if save and not order._state.adding:
        _save(order, fields)
    return True


def events_write(order: Order) -> EventWrite | None:
    """Take the order's pending events as one INSERT for the caller's statement (None: there are none).

    The caller runs `sql` (alone, or as a data-modifying CTE of its own statement) and then calls
    `announce()` on the result, so the push follows only events that were written."""
    pending = _pending(order)
    if not pending:
        return None
    events = list(pending)
    pending.clear()
    conn = connections[DEFAULT_DB_ALIAS]
    values: list[Any] = []
    for event in events:
        values += [f.get_db_prep_save(f.pre_save(event, True), conn) for f in _EVENT_FIELDS]
    row = "(" + ", ".join("%s" for _ in _EVENT_FIELDS) + ")"
    sql = f'INSERT INTO "{_EVENT_TABLE}" ({_EVENT_COLUMNS}) VALUES {", ".join([row] * len(events))}'  # noqa: S608 - model metadata
    return EventWrite(sql, values, len(events), order, events)


def _save(order: Order, fields: tuple[str, ...]) -> None:
    write = events_write(order)
    assert write is not None
    update_sql, update_values = row_write(order, tuple(dict.fromkeys((*_UPDATE_FIELDS, *fields))))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH e AS ({write.sql} RETURNING 1) {update_sql}", [*write.values, *update_values])
        if cursor.rowcount != 1:
            raise DatabaseError(f"order {order.pk} transition touched {cursor.rowcount} rows, expected one")
    write.announce()
    ledger_changed([order.instance_id])


@functools.cache
def _casts() -> str:
    """One event row of typed parameters (`VALUES` in a `SELECT` types nothing by itself)."""
    row = ", ".join(f"%s::{f.db_type(connection)}" for f in _EVENT_FIELDS)
    return f"({row})"


def order_insert(order: Order) -> bool:
    """Insert a new order and its events (its birth, and any transition since) in ONE statement;
    False, writing nothing, when its client_order_id is already taken (`ON CONFLICT DO NOTHING`).
    The values are prepared exactly as the ORM's INSERT prepares them."""
    sql, values = row_write(order)
    sql += " ON CONFLICT (client_order_id) DO NOTHING"
    write = events_write(order)
    with connection.cursor() as cursor:
        if write is None:
            cursor.execute(sql, values)
            inserted = cursor.rowcount == 1
        else:
            # The events are written only if the order is: the conflict of a retry writes neither.
            rows = ", ".join([_casts()] * write.count)
            cursor.execute(
                f"WITH o AS ({sql} RETURNING 1), e AS (INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) "  # noqa: S608
                f"SELECT * FROM (VALUES {rows}) v WHERE EXISTS (SELECT 1 FROM o)) SELECT count(*) FROM o",
                [*values, *write.values],
            )
            row = cursor.fetchone()
            inserted = row is not None and row[0] == 1
    if inserted:
        mark_saved(order)
        if write is not None:
            write.announce()
    return inserted


def orders_transition(
    orders: QuerySet[Order], to_status: str, *, at: datetime, reason: str | None = None
) -> int:
    """Move every order `orders` selects to `to_status` (stamping `cancelled_at = at`, and
    `deny_reason` when given) and record one event each, in ONE statement that locks the rows
    first (`SELECT ... FOR UPDATE`, whose conditions PostgreSQL re-checks on a row another
    transaction changed meanwhile). Returns how many orders moved; pushes after the commit and
    invalidates the cached snapshots of their instances."""
    select_sql, select_params = (
        orders.order_by().values_list("id", "status").query.get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    )
    table = Order._meta.db_table
    set_reason = ", deny_reason = %s" if reason is not None else ""
    sql = (
        f"WITH old AS ({select_sql} FOR UPDATE), "  # noqa: S608 - compiled by the ORM, model metadata
        f'u AS (UPDATE "{table}" o SET status = %s, cancelled_at = %s{set_reason} FROM old '
        "WHERE o.id = old.id AND old.status <> %s "
        "RETURNING o.id, old.status AS from_status, o.filled_qty, o.tenant_id, o.instance_id, "
        "o.client_order_id, o.is_shadow), "
        f"e AS (INSERT INTO {_EVENT_TABLE} ({_EVENT_COLUMNS}) SELECT {', '.join(_bulk_event_columns())} FROM u) "
        "SELECT id, from_status, filled_qty, tenant_id, instance_id, client_order_id, is_shadow FROM u"
    )
    params: list[Any] = [*select_params, to_status, at]
    if reason is not None:
        params.append(reason[:300])
    params.append(to_status)
    text = (reason or "")[:300]
    params += [to_status, text, at]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    by_instance: dict[Any, tuple[Any, list[dict[str, Any]]]] = {}
    for order_id, from_status, filled_qty, tenant_id, instance_id, client_order_id, is_shadow in rows:
        by_instance.setdefault(instance_id, (tenant_id, []))[1].append(
            order_events.payload(
                order_id=order_id,
                client_order_id=client_order_id,
                is_shadow=is_shadow,
                from_status=from_status,
                to_status=to_status,
                filled_qty=filled_qty,
                deny_code="",
                reason=text,
                at=at,
            )
        )
    for instance_id, (tenant_id, payloads) in by_instance.items():
        order_events.announce(tenant_id, instance_id, payloads)
    if by_instance:
        ledger_changed(list(by_instance))
    return len(rows)


def _bulk_event_columns() -> list[str]:
    """The event's columns from the updated row `u` (in `_EVENT_FIELDS` order)."""
    source = {
        "order_id": "u.id",
        "tenant_id": "u.tenant_id",
        "from_status": "u.from_status",
        "to_status": "%s",
        "filled_qty": "u.filled_qty",
        "deny_code": "''",
        "reason": "%s",
        "at": "%s::timestamp with time zone",
    }
    columns = [source[f.column] for f in _EVENT_FIELDS]
    bound = [f.column for f in _EVENT_FIELDS if "%s" in source[f.column]]
    assert bound == ["to_status", "reason", "at"], "parameter order of the bulk event insert"
    return columns
