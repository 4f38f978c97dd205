"""The user (order/fill) streams of live accounts, applied to the ledger as they arrive.

`UserStreams` runs one thread per live account (with credentials) on the given brokers: the
account's adapter streams its order reports (`VenueAdapter.stream_orders`: the venue's own user
stream through its official client, reconnecting by itself and, after every connect, reading the
orders our ledger holds open over REST, so a dropped socket loses no fill) and each report goes
through `order_apply_venue_report`, the one function every venue report is applied by. It is
idempotent and monotonic (cumulative fills, status only forward), so a report delivered twice, or
an older REST read after a newer stream event, books nothing more.

Accounts added later are picked up at the next rescan; a stream thread that died is restarted.
Each stream's health (connects, drops, reports, last event) is kept in Redis for the dashboard
(`user_stream_health`). Credentials are decrypted in this process only and never logged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

from django.db import close_old_connections, connections

from stratbox.trading.models import OPEN_STATUSES, Account, AccountKind, Order, OrderStatus
from stratbox.trading.services.live import order_apply_venue_report
from stratbox.trading.venue_accounts import adapter_for_account
from stratbox.venues.base import StreamHealth, VenueAdapter, VenueOrder
from stratbox.venues.health import health_publish, health_read

log = logging.getLogger(__name__)

HEALTH_KEY = "stratbox:venue:userstream:{account_id}"


def live_accounts(brokers: list[str] | None = None) -> list[Account]:
    """Live accounts with credentials (on these brokers, when given): the ones a user stream serves."""
    accounts = Account.objects.filter(kind=AccountKind.LIVE).exclude(credentials_ciphertext="")
    if brokers is not None:
        accounts = accounts.filter(broker__in=brokers)
    return list(accounts.order_by("created_at"))


def open_orders_of(account_id: uuid.UUID | str, adapter: VenueAdapter) -> list[tuple[str, str]]:
    """(the id the venue knows it by, symbol) of the account's real orders our ledger holds open
    and that may be at the venue (a journaled order never claimed for sending cannot be)."""
    close_old_connections()
    rows = (
        Order.objects.filter(account_id=account_id, is_shadow=False, status__in=OPEN_STATUSES)
        .exclude(status=OrderStatus.NEW, sent_at__isnull=True)
        .order_by("created_at")
        .values_list("client_order_id", "venue_client_order_id", "market__symbol")
    )
    return [(venue_id or adapter.client_id_for(ours), str(symbol)) for ours, venue_id, symbol in rows]


def report_apply(account: Account, report: VenueOrder) -> Order | None:
    """Apply one user-stream report (None: not an order of ours, e.g. placed by hand at the venue)."""
    close_old_connections()  # a long-lived stream thread: never reuse a connection the server dropped
    order = order_apply_venue_report(account, report)
    if order is None:
        log.info("account %s: venue order %s is not ours; ignored", account.pk, report.venue_order_id)
    return order


def user_stream_health(account_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The last health a user stream of this account published (None: no stream is running)."""
    return health_read(HEALTH_KEY.format(account_id=account_id))


def account_stream_run(account: Account, stop: threading.Event, health: StreamHealth | None = None) -> None:
    """Stream one account's order reports into the ledger until `stop` is set (blocking)."""
    health = health or StreamHealth()
    counts = {"reports": 0}
    adapter = adapter_for_account(account)
    key = HEALTH_KEY.format(account_id=account.pk)

    def publish(stopped: bool = False) -> None:
        health_publish(key, health, reports=counts["reports"], stopped=stopped)

    def on_report(report: VenueOrder) -> None:
        health.last_quote_ts = time.time()
        counts["reports"] += 1
        try:
            report_apply(account, report)
        except Exception as exc:  # one bad report must not end the stream: the reconciler re-reads it
            log.exception(
                "account %s: applying venue report of %s failed", account.pk, report.client_order_id
            )
            health.errors = [*health.errors[-9:], f"{report.client_order_id}: {type(exc).__name__}"]
        publish()

    publisher = threading.Thread(target=_publish_every, args=(publish, stop), daemon=True)
    publisher.start()
    try:
        adapter.stream_orders(on_report, stop, health, lambda: open_orders_of(account.pk, adapter))
    finally:
        if stop.is_set():  # ended on purpose: its last record says so (the UI shows "stopped")
            publisher.join(timeout=10)
            publish(stopped=True)
        else:
            publish()
            publisher.join(timeout=10)
        connections.close_all()  # this thread's own connections: the stream is over


def _publish_every(publish: Any, stop: threading.Event, every: float = 5.0) -> None:
    while not stop.wait(every):
        try:
            publish()
        except Exception:
            log.warning("user stream health could not be published", exc_info=True)


class UserStreams:
    """One user-stream thread per live account on `brokers` (all brokers: None), kept running."""

    def __init__(self, *, brokers: list[str] | None, stop: threading.Event, rescan: float = 30.0) -> None:
        self.brokers = brokers
        self.stop = stop
        self.rescan = rescan
        self.threads: dict[str, threading.Thread] = {}
        self.health: dict[str, StreamHealth] = {}

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="user-streams", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.ensure()
            except Exception:
                log.exception("user streams: could not list live accounts")
            self.stop.wait(self.rescan)
        for thread in self.threads.values():
            thread.join(timeout=15)
        connections.close_all()  # this thread's own

    def ensure(self) -> list[str]:
        """Start a stream for every live account that has none running; returns the started ids."""
        close_old_connections()
        started = []
        for account in live_accounts(self.brokers):
            key = str(account.pk)
            thread = self.threads.get(key)
            if thread is not None and thread.is_alive():
                continue
            health = self.health.setdefault(key, StreamHealth())
            thread = threading.Thread(
                target=self._run_one, args=(account, health), name=f"user-stream:{key[:8]}", daemon=True
            )
            self.threads[key] = thread
            thread.start()
            started.append(key)
        return started

    def _run_one(self, account: Account, health: StreamHealth) -> None:
        try:
            account_stream_run(account, self.stop, health)
        except Exception:
            log.exception("user stream of account %s ended; restarted at the next rescan", account.pk)
