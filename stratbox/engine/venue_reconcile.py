"""The venue reconciler: compare a live account's orders, positions and cash with what its venue holds.

Run at worker start-up and periodically from beat (`engine.venue_reconcile_all`), per live account
with credentials; a late or repeated run is harmless (it re-reads both sides and changes only
what differs).

1. Orders: every order our ledger holds open at the venue (accepted, partially filled, or sent and
   unknown) is read back by its client_order_id. A venue state ahead of ours (a fill or cancel the
   user stream never delivered) is applied through `order_apply_venue_report`, the one ledger
   path for venue reports, and recorded as a corrected `order` discrepancy. An order the venue had
   accepted but no longer knows is an `order_missing` discrepancy and pauses its instance. (Orders
   still `new`/`unknown` that the venue does not know are the live resolver's: it settles them.)
2. Positions: per instrument (the base currency on a crypto exchange), the sum of the account's
   open positions against the venue's. 3. Cash: the account's balance against the venue's total
   in the account's currency (when the venue reports that currency), within
   `STRATBOX_RECONCILE_CASH_TOLERANCE`.

A position or cash difference is read twice (the order pass runs again in between), so a fill
landing between two reads is not mistaken for one. A difference that persists becomes a
`VenueDiscrepancy` (ours, theirs, the action taken), an audit event, and pauses the affected
instances (`VENUE_DISCREPANCY`) until a person looks; the same difference seen again on the next
run is not recorded twice. The account's last result is kept in `AccountReconcile` for the UI.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.models import AccountReconcile, DiscrepancyKind, ReconcileStatus, VenueDiscrepancy
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.trading.credentials import CredentialsUnavailable
from stratbox.trading.models import Account, AccountKind, Order, OrderStatus, Position
from stratbox.trading.services.live import order_apply_venue_report
from stratbox.trading.venue_accounts import adapter_for_account
from stratbox.venues.base import VenueAdapter, VenueError, VenueOrder
from tenants.services import audit_record

log = logging.getLogger(__name__)

# Orders the venue has (or may have) seen: read back by client_order_id on every run.
_CHECKED = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN, OrderStatus.NEW)
# Orders the venue acknowledged: one it no longer knows is a discrepancy.
_ACKNOWLEDGED = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


@dataclass
class ReconcileResult:
    account_id: str
    status: str = ReconcileStatus.OK
    message: str = ""
    checked_orders: int = 0
    corrected: list[str] = field(default_factory=list)
    discrepancies: list[VenueDiscrepancy] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "orders": self.checked_orders,
            "corrected": len(self.corrected),
            "discrepancies": len(self.discrepancies),
            "paused": len(self.paused),
        }


def num(value: Decimal) -> str:
    """A quantity or amount as plain text ("2", "99626.5"; never "0E-8")."""
    return format(value.normalize(), "f")


def position_key(symbol: str) -> str:
    """What a venue position is held in: the symbol (AAPL), or a pair's base currency (BTC/USDT -> BTC)."""
    return symbol.split("/")[0] if "/" in symbol else symbol


def live_accounts_to_reconcile() -> list[Account]:
    return list(
        Account.objects.filter(kind=AccountKind.LIVE)
        .exclude(credentials_ciphertext="")
        .exclude(broker="")
        .order_by("created_at")
    )


def account_reconcile(
    *, account: Account, adapter: VenueAdapter | None = None, now: datetime | None = None
) -> ReconcileResult:
    """Reconcile one live account with its venue (see the module docstring); never raises for a venue
    that cannot be read: the result (and AccountReconcile) says `error` and why."""
    now = now or timezone.now()
    result = ReconcileResult(account_id=str(account.pk))
    try:
        adapter = adapter or adapter_for_account(account)
        _orders_pass(account, adapter, result, now)
        positions = _position_differences(account, adapter)
        cash = _cash_difference(account, adapter)
        if positions or cash:  # read again after another order pass: a fill may have landed in between
            _orders_pass(account, adapter, result, now)
            positions = _position_differences(account, adapter) if positions else {}
            cash = _cash_difference(account, adapter) if cash else None
        for key, (ours, theirs) in sorted(positions.items()):
            affected = _instances(account, key=key)
            _raise(
                result,
                account,
                DiscrepancyKind.POSITION,
                key,
                {"qty": num(ours)},
                {"qty": num(theirs)},
                affected,
                now,
            )
        if cash is not None:
            ours_cash, theirs_cash, currency = cash
            _raise(
                result,
                account,
                DiscrepancyKind.BALANCE,
                currency,
                {"cash": num(ours_cash)},
                {"cash": num(theirs_cash)},
                _instances(account),
                now,
            )
    except (VenueError, CredentialsUnavailable) as exc:
        result.status = ReconcileStatus.ERROR
        result.message = f"the venue could not be read: {exc}"[:300]
        log.warning("reconcile of account %s: %s", account.pk, result.message)
    else:
        if result.discrepancies:
            result.status = ReconcileStatus.DISCREPANCIES
            result.message = "; ".join(f"{d.kind} {d.subject}: {d.action}" for d in result.discrepancies)[
                :300
            ]
        else:
            result.message = (
                f"{result.checked_orders} open order(s) checked, {len(result.corrected)} corrected"
            )
    AccountReconcile.objects.update_or_create(
        account=account,
        defaults={
            "tenant_id": account.tenant_id,
            "last_at": now,
            "status": result.status,
            "message": result.message,
            "summary": result.summary(),
        },
    )
    return result


# --- orders ----------------------------------------------------------------------------------------


def _orders_pass(account: Account, adapter: VenueAdapter, result: ReconcileResult, now: datetime) -> None:
    grace = timedelta(seconds=float(getattr(settings, "STRATBOX_RECONCILE_ORDER_GRACE_SECONDS", 30)))
    orders = list(
        Order.objects.filter(account=account, is_shadow=False, status__in=_CHECKED)
        .exclude(status=OrderStatus.NEW, sent_at__isnull=True)  # never sent: the venue cannot hold it
        .select_related("market")
        .order_by("created_at")
    )
    for order in orders:
        result.checked_orders += 1
        venue_id = order.venue_client_order_id or adapter.client_id_for(order.client_order_id)
        report = adapter.order_by_client_id(venue_id, order.market.symbol)
        if report is None:
            # Not visible (yet): a fresh order may still be on its way or behind the venue's read path.
            if order.status in _ACKNOWLEDGED and order.created_at < now - grace:
                _raise(
                    result,
                    account,
                    DiscrepancyKind.ORDER_MISSING,
                    order.client_order_id,
                    {"status": order.status, "filled_qty": num(order.filled_qty)},
                    {"status": "not found"},
                    [order.instance_id],
                    now,
                )
            continue
        if report.status == order.status and report.filled_qty == order.filled_qty:
            continue
        ours = {"status": order.status, "filled_qty": num(order.filled_qty)}
        after = order_apply_venue_report(account, report, now=now)
        if after is None or (after.status == order.status and after.filled_qty == order.filled_qty):
            continue  # the ledger was already as far as the venue (or further): nothing was missed
        result.corrected.append(order.client_order_id)
        _record(
            result,
            account,
            DiscrepancyKind.ORDER,
            order.client_order_id,
            ours,
            _venue_view(report),
            f"corrected from the venue: now {after.status}, filled {after.filled_qty}",
            [],
            now,
        )


def _venue_view(report: VenueOrder) -> dict[str, Any]:
    return {
        "status": report.status,
        "filled_qty": num(report.filled_qty),
        "avg_fill_price": None if report.avg_fill_price is None else num(report.avg_fill_price),
        "venue_order_id": report.venue_order_id,
    }


# --- positions and cash -----------------------------------------------------------------------------


def _position_differences(account: Account, adapter: VenueAdapter) -> dict[str, tuple[Decimal, Decimal]]:
    ours: dict[str, Decimal] = defaultdict(Decimal)
    rows = Position.objects.filter(account=account, is_shadow=False, closed_at__isnull=True).values_list(
        "market__symbol", "qty"
    )
    for symbol, qty in rows:
        ours[position_key(symbol)] += qty
    theirs: dict[str, Decimal] = defaultdict(Decimal)
    for position in adapter.positions():
        theirs[position_key(position.symbol)] += position.qty
    return {
        key: (ours[key], theirs[key])
        for key in set(ours) | set(theirs)
        if ours[key].normalize() != theirs[key].normalize()
    }


def _cash_difference(account: Account, adapter: VenueAdapter) -> tuple[Decimal, Decimal, str] | None:
    balances = {b.currency: b for b in adapter.balances()}
    venue = balances.get(account.currency)
    if venue is None:
        return None  # the venue holds no cash in the account's currency: nothing to compare
    ours = Account.objects.values_list("balance", flat=True).get(pk=account.pk)  # as the fills left it
    tolerance = Decimal(str(getattr(settings, "STRATBOX_RECONCILE_CASH_TOLERANCE", "0.01")))
    if abs(venue.total - ours) <= tolerance:
        return None
    return ours, venue.total, account.currency


# --- recording --------------------------------------------------------------------------------------


def _instances(account: Account, *, key: str | None = None) -> list[Any]:
    """Instances trading on this account (on instruments held in `key`, when given): the active ones
    (an observing instance sends nothing, so it keeps thinking)."""
    instances = StrategyInstance.objects.filter(account=account, mode=Mode.ACTIVE).select_related("market")
    return [i.pk for i in instances if key is None or position_key(i.market.symbol) == key]


def _raise(
    result: ReconcileResult,
    account: Account,
    kind: str,
    subject: str,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    instance_ids: Iterable[Any],
    now: datetime,
) -> None:
    """A difference that needs a person: record it (once per distinct difference) and pause."""
    last = (
        VenueDiscrepancy.objects.filter(account=account, kind=kind, subject=subject)
        .order_by("-at", "-id")
        .first()
    )
    paused = _pause(list(instance_ids), kind, subject)
    result.paused += paused
    if last is not None and last.ours == ours and last.theirs == theirs and not paused:
        return  # the same difference as last time, already recorded and acted on
    action = f"paused {len(paused)} instance(s)" if paused else "recorded (no running instance to pause)"
    _record(result, account, kind, subject, ours, theirs, action, paused, now)


def _record(
    result: ReconcileResult,
    account: Account,
    kind: str,
    subject: str,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    action: str,
    paused: list[str],
    now: datetime,
) -> None:
    with transaction.atomic():
        discrepancy = VenueDiscrepancy.objects.create(
            tenant_id=account.tenant_id,
            account=account,
            kind=kind,
            subject=subject[:128],
            ours=ours,
            theirs=theirs,
            action=action[:300],
            paused_instances=paused,
            at=now,
        )
        audit_record(
            tenant=account.tenant,
            actor=None,
            actor_label="venue reconciler",
            action="venue.discrepancy",
            target=account,
            before=ours,
            after={"venue": theirs, "kind": kind, "subject": subject, "action": action},
        )
    result.discrepancies.append(discrepancy)
    log.warning(
        "account %s: %s discrepancy on %s: ours %s, venue %s; %s",
        account.pk,
        kind,
        subject,
        ours,
        theirs,
        action,
    )


def _pause(instance_ids: list[Any], kind: str, subject: str) -> list[str]:
    paused = []
    for instance in StrategyInstance.objects.filter(pk__in=instance_ids).select_related("tenant"):
        with transaction.atomic():
            if pause_runtime(instance, PauseReason.VENUE_DISCREPANCY):
                audit_record(
                    tenant=instance.tenant,
                    actor=None,
                    actor_label="venue reconciler",
                    action="instance.auto_pause",
                    target=instance,
                    after={
                        "paused": True,
                        "reason": PauseReason.VENUE_DISCREPANCY,
                        "kind": kind,
                        "subject": subject,
                    },
                )
                paused.append(str(instance.pk))
    return paused


def venue_catalogues_resync() -> dict[str, str]:
    """Re-sync the instrument catalogue of every venue some live account trades on (new listings,
    delistings, tick and lot changes), read with that venue's oldest live account."""
    from stratbox.venues.catalogue import catalogue_sync

    done: dict[str, str] = {}
    for account in live_accounts_to_reconcile():
        if account.broker in done:
            continue
        try:
            synced = catalogue_sync(adapter=adapter_for_account(account))
            done[account.broker] = (
                f"{synced.created} new, {synced.updated} updated, {synced.delisted} delisted"
            )
        except (VenueError, CredentialsUnavailable) as exc:
            done[account.broker] = f"failed: {exc}"[:300]
            log.warning("catalogue resync of %s: %s", account.broker, exc)
    return done
