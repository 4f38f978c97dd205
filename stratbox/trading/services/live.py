"""Live execution: journal, send once, record the venue's answers, resolve doubt by asking.

The path of a live order (an active, approved instance on a live account):

1. `order_place` runs the same risk gate as paper trading and **journals** the intent: the order
   row is inserted with status `new` and its deterministic `client_order_id`, and committed.
2. `order_send` (after the commit, outside any transaction) **claims** the row for its one send
   (`sent_at`, a conditional UPDATE: only one worker ever sends an order), then calls the venue.
3. The venue's answer goes through `order_apply_venue_report`, the one function every venue report
   (the send's answer, a query, the user stream, the reconciler) is applied by.
4. An unclear outcome (timeout after the venue accepted, connection reset, 5xx) sets `unknown` and
   is resolved by asking the venue for our client_order_id, never by sending again. What a
   query cannot settle yet stays `unknown` for `live_orders_resolve` (a periodic task).
5. A definite refusal is `rejected` with a deny code and the venue's own message:
   VENUE_REJECTED, VENUE_RATE_LIMITED, VENUE_UNAVAILABLE, INSUFFICIENT_FUNDS_AT_VENUE.

Restart safety: a worker killed after journaling leaves `new` with `sent_at` NULL (never sent:
the venue cannot hold it), or `sent_at` set / `unknown` (maybe sent). The resolver asks the venue
for every one of them; an order the venue still does not know once `STRATBOX_LIVE_UNKNOWN_GRACE_SECONDS`
have passed since it was journaled (longer than any send can take) is settled `rejected`
(VENUE_UNAVAILABLE), never resent. No order is lost, none is doubled.

Credentials are decrypted only here, in the worker that talks to the venue (`LiveBroker`), and
never logged: log lines name the order and the venue's message only.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from stratbox.trading.brokers.base import BrokerUnavailable, FillSpec, q8
from stratbox.trading.brokers.live import LiveBroker
from stratbox.trading.models import Account, AccountKind, Fill, Order, OrderStatus, OrderType
from stratbox.trading.risk import Deny
from stratbox.trading.services.ledger import fill_apply
from stratbox.trading.services.transitions import order_transition
from stratbox.trading.snapshot_cache import ledger_changed
from stratbox.venues.base import (
    DUPLICATE_CLIENT_ORDER_ID,
    INSUFFICIENT_FUNDS_AT_VENUE,
    VENUE_ORDER_NOT_FOUND,
    VENUE_RATE_LIMITED,
    VENUE_UNAVAILABLE,
    OrderIntent,
    VenueAdapter,
    VenueError,
    VenueOrder,
)
from stratbox.venues.registry import venue_config
from tenants.models import Tenant

logger = logging.getLogger(__name__)

DEFAULT_UNKNOWN_GRACE_SECONDS = 60.0
TERMINAL = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
_RANK = {
    OrderStatus.NEW: 0,
    OrderStatus.UNKNOWN: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
}
_VENUE_STATUS = {
    "accepted": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
# A venue's refusal code -> the deny code the order is stored with (anything else: VENUE_REJECTED).
_DENY = {
    INSUFFICIENT_FUNDS_AT_VENUE: Deny.INSUFFICIENT_FUNDS_AT_VENUE,
    VENUE_RATE_LIMITED: Deny.VENUE_RATE_LIMITED,
    VENUE_UNAVAILABLE: Deny.VENUE_UNAVAILABLE,
}
LIVE_ORDER_TYPES = (OrderType.MARKET, OrderType.LIMIT)


def unknown_grace_seconds() -> float:
    return float(getattr(settings, "STRATBOX_LIVE_UNKNOWN_GRACE_SECONDS", DEFAULT_UNKNOWN_GRACE_SECONDS))


def live_intent_problem(*, type: str, bracket: Any) -> str | None:
    """Why a live venue cannot take this order (None: it can). Venue adapters place market and
    limit orders; stops and bracket legs would have to rest at the venue, which they do not yet."""
    if type not in LIVE_ORDER_TYPES:
        return f"live venues take market and limit orders only, not {type}"
    if bracket:
        return "live venues take no stop-loss / take-profit brackets yet"
    return None


# --- applying a venue's word ---------------------------------------------------------------------


def order_apply_venue_report(
    account: Account, report: VenueOrder, *, now: datetime | None = None
) -> Order | None:
    """Apply one venue report of an order of `account` to our ledger; the one way a venue's word lands.

    Contract (for every caller: the send's answer, `order_by_client_id` queries, the user
    order/fill stream, the reconciler):
    - The order is found by `report.client_order_id` among `account`'s real (non-shadow) orders,
      as our `client_order_id` or as the `venue_client_order_id` it was sent under (a digest where
      the venue allows fewer characters); None when we hold no such order (not ours: the caller
      decides what a foreign order means).
    - Fills are cumulative: when `report.filled_qty` exceeds the quantity we have booked, the
      difference is booked as ONE fill, priced so that our booked notional matches the venue's
      average (`report.avg_fill_price` x `report.filled_qty`); fee by the venue's configured
      `fee_bps` (0 when not configured). Ledger, position and cash move exactly once per new
      quantity: it runs under the tenant, account and order row locks (the order every writer of
      capital takes), so the same report twice, an older one, or two concurrent ones book nothing
      more.
    - Status only moves forward (new/unknown -> accepted -> partially_filled -> terminal); the
      venue's terminal status (filled, cancelled, expired, rejected) always wins, and a report
      older than what we know changes nothing. A venue rejection stores VENUE_REJECTED.
    - `venue_order_id` is recorded the first time a report carries it.
    - Runs its own transaction; call it outside any other (never while a venue call is pending).
    Returns the order as it stands after the report.
    """
    now = now or timezone.now()
    coid = report.client_order_id
    head = (
        Order.objects.filter(Q(client_order_id=coid) | Q(venue_client_order_id=coid), account_id=account.pk)
        .filter(is_shadow=False)
        .values_list("pk", "tenant_id")
        .first()
    )
    if head is None:
        return None
    order_id, tenant_id = head
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk").first()
        locked_account = Account.objects.select_for_update().get(pk=account.pk)
        order = Order.objects.select_for_update().get(pk=order_id)
        changed = _apply(order, locked_account, report, now)
    if changed:
        logger.info(
            "live order %s: venue %s status %s filled %s -> %s",
            order.client_order_id,
            report.venue_order_id,
            report.raw_status or report.status,
            report.filled_qty,
            order.status,
        )
    return order


def _apply(order: Order, account: Account, report: VenueOrder, now: datetime) -> bool:
    fields: set[str] = set()
    if report.venue_order_id and not order.venue_order_id:
        order.venue_order_id = report.venue_order_id[:128]
        fields.add("venue_order_id")
    delta = report.filled_qty - (order.filled_qty or 0)
    if delta > 0:
        price = _increment_price(order, report, delta)
        fee = q8(delta * price * _fee_rate(account))
        # No `lifecycle.order_after_fill`: a live order has no bracket legs or OCO sibling here, and
        # its resting reduce-only siblings are the venue's to end, not ours.
        fill_apply(order=order, spec=FillSpec(qty=delta, price=price, fee=fee), account=account, now=now)
    target = _VENUE_STATUS.get(report.status)
    moving = None
    if target is not None and target != order.status:
        if target in TERMINAL or (
            order.status not in TERMINAL and _RANK.get(target, 0) > _RANK.get(order.status, 0)
        ):
            moving = target
    status_after = moving or order.status
    if order.deny_code == Deny.VENUE_UNAVAILABLE and status_after != OrderStatus.REJECTED:
        # Our own settlement ("never reached the venue") is overruled by the venue's word.
        order.deny_code, order.deny_reason = "", ""
        fields |= {"deny_code", "deny_reason"}
        if status_after not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED):
            order.cancelled_at = None
            fields.add("cancelled_at")
    if status_after != OrderStatus.UNKNOWN and order.deny_reason.startswith("unclear send"):
        order.deny_reason = ""  # the venue answered: the doubt is resolved
        fields.add("deny_reason")
    if moving is not None:
        # The status change and its event, with the other changed fields, in one statement.
        rejected = moving == OrderStatus.REJECTED
        order_transition(
            order,
            moving,
            at=now,
            reason=f"the venue rejected it ({report.raw_status or report.status})" if rejected else None,
            deny_code=Deny.VENUE_REJECTED if rejected else None,
            fields=tuple(sorted(fields)),
        )
    elif fields:
        order.save(update_fields=sorted(fields))
    if (fields or delta > 0) and moving is None:
        ledger_changed([order.instance_id])
    return bool(fields) or delta > 0 or moving is not None


def _increment_price(order: Order, report: VenueOrder, delta: Decimal) -> Decimal:
    """The price of the quantity the venue filled beyond what we booked: the venue's average over the
    whole order, less what our earlier fills of it already booked."""
    average = report.avg_fill_price
    if average is None or average <= 0:
        return q8(report.limit_price or order.limit_price or order.est_price or Decimal(0))
    booked = order.filled_qty or Decimal(0)
    if booked <= 0:
        return q8(average)
    notional = Fill.objects.filter(order_id=order.pk).aggregate(
        n=Sum(ExpressionWrapper(F("qty") * F("price"), output_field=DecimalField()))
    )["n"] or Decimal(0)
    price = q8((average * report.filled_qty - notional) / delta)
    return price if price > 0 else q8(average)


def _fee_rate(account: Account) -> Decimal:
    """The venue's configured fee (`fee_bps` in its configuration; 0 when not configured)."""
    try:
        return Decimal(str(venue_config(account.broker).get("fee_bps", 0))) / Decimal(10000)
    except VenueError:
        return Decimal(0)


# --- sending ---------------------------------------------------------------------------------------


def _venue_client_id(order: Order, adapter: VenueAdapter) -> str:
    return order.venue_client_order_id or adapter.client_id_for(order.client_order_id)


def _intent(order: Order, adapter: VenueAdapter) -> OrderIntent:
    return OrderIntent(
        client_order_id=_venue_client_id(order, adapter),
        symbol=order.market.symbol,
        side=order.side,
        qty=order.qty,
        type=order.type,
        limit_price=order.limit_price if order.type == OrderType.LIMIT else None,
        tif=order.tif,
    )


def order_needs_send(order: Order | None) -> bool:
    """A journaled live order no worker has claimed yet (status `new` is only ever a live order's)."""
    return (
        order is not None
        and not order.is_shadow
        and order.status == OrderStatus.NEW
        and order.sent_at is None
    )


def order_send_after_commit(order: Order) -> Order:
    """Send a journaled order once its journal row is committed: now when no transaction is open,
    else when the caller's outermost transaction commits (the order is then returned still `new`)."""
    if connection.in_atomic_block:
        order_id = order.pk
        transaction.on_commit(lambda: order_send(order_id))
        return order
    return order_send(order.pk)


def _failpoint() -> None:
    pause = float(getattr(settings, "STRATBOX_LIVE_FAILPOINT_SLEEP_BEFORE_SEND", 0) or 0)
    if pause:
        time.sleep(pause)  # tests: a worker killed between the journal's commit and the send


def order_send(order_id: Any) -> Order:
    """The one send of a journaled live order: claim it, call the venue, record the answer.

    Only the worker whose conditional UPDATE sets `sent_at` sends; anyone else gets the order as it
    stands. Runs outside any transaction (the journal must be committed before the venue hears of it).
    """
    _failpoint()
    order = Order.objects.select_related("account", "market").get(pk=order_id)
    if not order_needs_send(order):
        return order
    account = order.account
    try:
        adapter = LiveBroker.for_account(account).adapter
    except BrokerUnavailable as exc:
        return _reject(order, Deny.BROKER_UNAVAILABLE, str(exc))
    intent = _intent(order, adapter)
    claimed = Order.objects.filter(pk=order_id, status=OrderStatus.NEW, sent_at__isnull=True).update(
        sent_at=timezone.now(), venue_client_order_id=intent.client_order_id
    )
    order.refresh_from_db()
    if not claimed:
        return order  # another worker sends it (or it was settled meanwhile)
    try:
        report = adapter.place(intent)
    except VenueError as exc:
        return _after_send_error(order, account, intent, exc)
    return order_apply_venue_report(account, report) or order


def _after_send_error(order: Order, account: Account, intent: OrderIntent, exc: VenueError) -> Order:
    if exc.code == DUPLICATE_CLIENT_ORDER_ID:
        # The venue already holds our client_order_id (an earlier send that we did not hear back
        # from): that order is this one; never a second.
        logger.warning("live order %s: venue says duplicate; resolving to its order", order.client_order_id)
        return _mark_unknown_then_resolve(order, account, intent, exc)
    if exc.uncertain:
        logger.warning(
            "live order %s: unclear send (%s): resolving by asking", order.client_order_id, exc.code
        )
        return _mark_unknown_then_resolve(order, account, intent, exc)
    return _reject(order, _DENY.get(exc.code, Deny.VENUE_REJECTED), exc.message)


def _transition_if(
    order: Order,
    to_status: str,
    *,
    at: datetime,
    reason: str,
    deny_code: str | None = None,
    **conditions: Any,
) -> bool:
    """Move the stored `order` to `to_status` (with its event) only while its row still matches
    `conditions` (checked under the row's lock); False when another worker changed it first."""
    with transaction.atomic():
        row = Order.objects.select_for_update().filter(pk=order.pk, **conditions).first()
        return row is not None and order_transition(row, to_status, at=at, reason=reason, deny_code=deny_code)


def _reject(order: Order, deny: Deny, message: str) -> Order:
    _transition_if(
        order,
        OrderStatus.REJECTED,
        at=timezone.now(),
        reason=message,
        deny_code=deny,
        status__in=(OrderStatus.NEW, OrderStatus.UNKNOWN),
    )
    logger.info("live order %s rejected: %s %s", order.client_order_id, deny, message[:300])
    order.refresh_from_db()
    return order


def _mark_unknown_then_resolve(order: Order, account: Account, intent: OrderIntent, exc: VenueError) -> Order:
    _transition_if(
        order,
        OrderStatus.UNKNOWN,
        at=timezone.now(),
        reason=f"unclear send ({exc.code}): {exc.message}",
        status=OrderStatus.NEW,
    )
    order.refresh_from_db()
    try:
        report = LiveBroker.for_account(account).adapter.resolve(intent)
    except (VenueError, BrokerUnavailable) as err:
        logger.warning("live order %s: still unknown (%s)", order.client_order_id, err)
        return order
    if report is None:
        return order  # the venue does not show it (yet): the periodic resolver asks again
    return order_apply_venue_report(account, report) or order


# --- resolving doubt -----------------------------------------------------------------------------


def order_resolve(order: Order, *, now: datetime | None = None) -> Order:
    """Settle a live order in doubt (`new` or `unknown`), or refresh an open one, by asking the venue.

    Never sends. A `new` order never claimed for sending cannot be at the venue; one the venue
    does not know once the grace period has passed since it was journaled is settled `rejected`
    (VENUE_UNAVAILABLE, "never reached the venue"); before that it is left for the next round.
    """
    now = now or timezone.now()
    account = order.account
    grace = timedelta(seconds=unknown_grace_seconds())
    if order.status == OrderStatus.NEW and order.sent_at is None:
        if now - order.created_at < grace:
            return order  # its worker may be about to send it
        if _transition_if(
            order,
            OrderStatus.REJECTED,
            at=now,
            reason="never sent: the worker stopped between journaling and sending (not resent)",
            deny_code=Deny.VENUE_UNAVAILABLE,
            status=OrderStatus.NEW,
            sent_at__isnull=True,
        ):
            logger.warning("live order %s: never sent, settled rejected", order.client_order_id)
        order.refresh_from_db()
        return order
    try:
        adapter = LiveBroker.for_account(account).adapter
        report = adapter.order_by_client_id(_venue_client_id(order, adapter), order.market.symbol)
    except (VenueError, BrokerUnavailable) as exc:
        logger.warning("live order %s: cannot ask the venue (%s)", order.client_order_id, exc)
        return order
    if report is not None:
        return order_apply_venue_report(account, report, now=now) or order
    if order.status in (OrderStatus.NEW, OrderStatus.UNKNOWN) and now - order.created_at >= grace:
        if _transition_if(
            order,
            OrderStatus.REJECTED,
            at=now,
            reason="the venue never received it (asked after the grace period; not resent)",
            deny_code=Deny.VENUE_UNAVAILABLE,
            status=order.status,
        ):
            logger.warning("live order %s: unknown at the venue, settled rejected", order.client_order_id)
        order.refresh_from_db()
    return order


def live_orders_resolve(*, now: datetime | None = None, include_open: bool = True) -> int:
    """Every live order in doubt (`new`, `unknown`) asked about once; with `include_open` also the
    resting ones (`accepted`, `partially_filled`), whose fills the venue may have made since (a
    polling fallback next to the user stream: both apply reports idempotently). Returns how many
    orders changed."""
    statuses = [OrderStatus.NEW, OrderStatus.UNKNOWN]
    if include_open:
        statuses += [OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED]
    orders = (
        Order.objects.filter(is_shadow=False, account__kind=AccountKind.LIVE, status__in=statuses)
        .select_related("account", "market")
        .order_by("created_at")
    )
    changed = 0
    for order in orders:
        before = (order.status, order.filled_qty)
        try:
            after = order_resolve(order, now=now)
        except Exception:  # one order's failure never stops the others' resolution
            logger.exception("live order %s: resolution failed", order.client_order_id)
            continue
        changed += (after.status, after.filled_qty) != before
    return changed


# --- cancelling ------------------------------------------------------------------------------------


def order_is_live(order: Order) -> bool:
    return not order.is_shadow and order.account.kind == AccountKind.LIVE


def order_cancel_live(order: Order, *, reason: str = "cancelled by the strategy") -> bool:
    """Cancel a live order at its venue (outside any transaction); True when it ends cancelled.

    A journaled order never sent is cancelled here without asking anyone. Otherwise the venue
    decides: its answer (or, when it refuses, what it holds for our client_order_id: e.g. filled
    in the meantime) is applied like any report.
    """
    now = timezone.now()
    if _transition_if(
        order,
        OrderStatus.CANCELLED,
        at=now,
        reason=f"{reason} (before it was sent)",
        status=OrderStatus.NEW,
        sent_at__isnull=True,
    ):
        return True
    account = order.account
    symbol = order.market.symbol
    try:
        adapter = LiveBroker.for_account(account).adapter
    except BrokerUnavailable as exc:
        logger.warning("live order %s: cannot cancel: %s", order.client_order_id, exc)
        return False
    venue_id = _venue_client_id(order, adapter)
    try:
        report: VenueOrder | None = adapter.cancel(venue_id, symbol)
    except VenueError as exc:
        logger.info("live order %s: cancel refused (%s): asking the venue", order.client_order_id, exc.code)
        try:
            report = adapter.order_by_client_id(venue_id, symbol)
        except VenueError:
            return False
        if report is None and exc.code == VENUE_ORDER_NOT_FOUND:
            return False  # the resolver settles an order the venue never received
    if report is None:
        return False
    after = order_apply_venue_report(account, report, now=now) or order
    if after.status == OrderStatus.CANCELLED and not after.deny_reason:
        Order.objects.filter(pk=after.pk).update(deny_reason=reason[:300])
    return after.status == OrderStatus.CANCELLED


def orders_cancel_live(orders: list[Order], *, reason: str) -> int:
    """`order_cancel_live` for each (e.g. an instance turned off); how many ended cancelled."""
    return sum(1 for order in orders if order_cancel_live(order, reason=reason))
