"""`manage.py run_feed [--once] [--interval 1.0] [--seed N]`: the market-data feed process.

Advances every active market once per interval (simulated walk or replay, see `feeds.py`) and
stores the quotes in Redis. SIGTERM / SIGINT finish the current step and exit cleanly (status 0).
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from stratbox.markets.feeds import FeedRegistry, feed_step


class Command(BaseCommand):
    help = "Publish quotes for every active market to Redis, once per interval."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one step, then exit (tests, cron)")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between steps (default 1)")
        parser.add_argument(
            "--seed", default=None, help="random-walk seed (default settings.STRATBOX_FEED_SEED or 0)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        from django.conf import settings

        seed = opts["seed"] if opts["seed"] is not None else getattr(settings, "STRATBOX_FEED_SEED", 0)
        registry = FeedRegistry(seed=seed)
        stop = {"requested": False}

        def _request_stop(signum: int, _frame: Any) -> None:
            stop["requested"] = True

        previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        interval = max(0.05, float(opts["interval"]))
        steps = 0
        try:
            next_at = time.monotonic()
            while not stop["requested"]:
                quotes = feed_step(time.time(), registry=registry)
                steps += 1
                if opts["once"]:
                    self.stdout.write(f"published {len(quotes)} quote(s)")
                    break
                # A long-running process: drop connections that died or outlived CONN_MAX_AGE.
                close_old_connections()
                next_at += interval
                # Sleep in short slices so a signal ends the loop promptly.
                while not stop["requested"]:
                    remaining = next_at - time.monotonic()
                    if remaining <= 0:
                        break
                    time.sleep(min(remaining, 0.1))
                if time.monotonic() - next_at > 5 * interval:
                    next_at = time.monotonic()  # fell far behind (e.g. suspended): do not burst
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not opts["once"]:
            self.stdout.write(f"feed stopped after {steps} step(s)")
