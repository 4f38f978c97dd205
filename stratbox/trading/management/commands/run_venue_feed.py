"""`manage.py run_venue_feed --account ID | --broker NAME [--symbols A,B] [--no-sync]`: a venue's quotes into the platform.

The venue feed process of one venue: reads with one live account's credentials (decrypted here,
in this trusted process only), syncs the venue's catalogue into `Market` rows (retrying until the
venue answers), then streams the quotes of the markets in use into the quote path — the markets
instances run on plus `--symbols`, or else the first `--max-symbols` active ones (Alpaca's free
stream takes 30). Reconnects and REST polling are the adapter's (stratbox/venues/streaming.py).
Beside the quotes it runs the user (order/fill) streams of every live account on the same broker
(`stratbox.trading.venue_streams`: each report applied to the ledger once), unless
`--no-user-streams`, and asks the workers for a start-up reconcile of those accounts.
SIGTERM / SIGINT stop it cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.models import FeedSource, Market
from stratbox.trading.models import Account, AccountKind
from stratbox.trading.venue_accounts import adapter_for_account
from stratbox.trading.venue_streams import UserStreams, live_accounts
from stratbox.venues.base import StreamHealth, VenueError
from stratbox.venues.catalogue import catalogue_sync, quotes_pump


class Command(BaseCommand):
    help = "Sync a venue's catalogue and stream its quotes into the platform's quote path."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--account", help="the live account whose keys read the venue")
        target.add_argument("--broker", help="or: the oldest live account on this broker (the local demo)")
        parser.add_argument(
            "--symbols", default="", help="comma-separated symbols to stream besides those in use"
        )
        parser.add_argument("--max-symbols", type=int, default=30)
        parser.add_argument("--no-sync", action="store_true", help="skip the catalogue sync")
        parser.add_argument(
            "--retry", type=float, default=2.0, help="seconds between attempts while the venue is down"
        )
        parser.add_argument(
            "--no-user-streams", action="store_true", help="quotes only: no live accounts' order/fill streams"
        )
        parser.add_argument(
            "--rescan", type=float, default=30.0, help="seconds between looks for new live accounts"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        live = Account.objects.filter(kind=AccountKind.LIVE).exclude(credentials_ciphertext="")
        try:
            if opts["account"]:
                account = live.filter(pk=opts["account"]).first()
            else:
                account = live.filter(broker=opts["broker"]).order_by("created_at").first()
        except (ValueError, ValidationError):
            account = None
        if account is None:
            raise CommandError(
                f"no live account {opts['account'] or 'on ' + opts['broker']} with credentials"
            )
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        adapter = adapter_for_account(account)
        streams = None
        if not opts["no_user_streams"]:
            streams = UserStreams(brokers=[account.broker], stop=stop, rescan=opts["rescan"])
            streams_thread = streams.start()
            self.stdout.write(f"user streams of the live accounts on {account.broker}")
            _reconcile_soon([str(a.pk) for a in live_accounts([account.broker])])
        while not opts["no_sync"] and not stop.is_set():
            try:
                result = catalogue_sync(adapter=adapter)
                self.stdout.write(
                    f"{adapter.venue}: {result.created} new, {result.updated} updated, {result.delisted} delisted"
                )
                break
            except VenueError as exc:
                self.stderr.write(f"{adapter.venue} catalogue: {exc}; retrying")
                stop.wait(opts["retry"])
        markets = _markets_to_stream(adapter.venue, opts["symbols"], opts["max_symbols"])
        if not markets:
            raise CommandError(f"no active {adapter.venue} markets to stream")
        self.stdout.write(f"streaming {len(markets)} {adapter.venue} market(s)")
        health = quotes_pump(adapter=adapter, markets=markets, stop=stop, health=StreamHealth())
        if streams is not None:
            streams_thread.join(timeout=15)
        self.stdout.write(f"venue feed stopped ({health.connects} connection(s), {health.drops} drop(s))")


def _reconcile_soon(account_ids: list[str]) -> None:
    """Start-up: the venue may have filled or cancelled orders while no stream listened."""
    from celery import current_app

    for account_id in account_ids:
        try:
            current_app.send_task("engine.venue_reconcile", args=[account_id])
        except Exception as exc:  # no broker: the beat's periodic reconcile catches up
            logging.getLogger(__name__).warning("start-up reconcile not queued: %s", exc)


def _markets_to_stream(venue: str, symbols: str, limit: int) -> list[Market]:
    wanted = {s.strip() for s in symbols.split(",") if s.strip()}
    active = Market.objects.filter(venue=venue, active=True, feed=FeedSource.VENUE)
    in_use = set(
        StrategyInstance.objects.filter(market__venue=venue)
        .exclude(mode=Mode.OFF)
        .values_list("market_id", flat=True)
    )
    chosen = list(active.filter(pk__in=in_use)) + list(
        active.filter(symbol__in=wanted).exclude(pk__in=in_use)
    )
    if not chosen:
        chosen = list(active.order_by("symbol")[:limit])
    return chosen[:limit]
