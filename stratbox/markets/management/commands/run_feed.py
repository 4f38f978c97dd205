"""`manage.py run_feed [--once] [--interval 1.0] [--seed N]`: the market-data feed process.

Advances every active market once per interval (simulated walk or replay, see `feeds.py`) and
stores the quotes in Redis. SIGTERM / SIGINT finish the current step and exit cleanly (status 0).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from stratbox.loops import run_every
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
        seed = opts["seed"] if opts["seed"] is not None else getattr(settings, "STRATBOX_FEED_SEED", 0)
        registry = FeedRegistry(seed=seed)
        interval = max(0.05, float(opts["interval"]))
        published: list[int] = []

        def step() -> None:
            published.append(len(feed_step(time.time(), registry=registry)))

        steps = run_every(interval, step, once=opts["once"])
        if opts["once"]:
            self.stdout.write(f"published {published[-1]} quote(s)")
        else:
            self.stdout.write(f"feed stopped after {steps} step(s)")
