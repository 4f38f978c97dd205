"""`manage.py run_dispatcher [--once] [--interval 0.25]`: the engine's dispatcher process.

Every interval it queues the slots falling due soon (`dispatcher.dispatch_once`, with a Celery ETA
at each batch's first due time); once a second it fills the resting paper limit orders the latest
quotes crossed, and every `ENGINE_SNAPSHOT_SECONDS` it copies the dirty runtimes and the run
counters into PostgreSQL (`snapshots.flush_all`, also once more on a clean stop). It used to be a beat task, but a beat message waits in the broker behind the tick
batches a busy worker has reserved — seconds under load, and every slot that fell due meanwhile was
coalesced. This process does not queue behind anything. Several may run (one per
machine for redundancy): the due set is taken atomically in Redis, so no slot is queued twice.
SIGTERM / SIGINT finish the current step and exit cleanly.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from stratbox.engine import conf
from stratbox.engine.dispatcher import dispatch_once, markets_mark_to_market
from stratbox.engine.snapshots import flush_all
from stratbox.loops import run_every

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Queue the engine's due ticks continuously (and fill crossed resting paper orders)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one step, then exit (tests, cron)")
        parser.add_argument(
            "--interval", type=float, default=0.25, help="seconds between steps (default 0.25)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        marked = {"at": 0.0}
        flushed = {"at": time.monotonic()}
        queued: list[int] = []

        def flush() -> None:
            flushed["at"] = time.monotonic()
            try:
                flush_all()
            except Exception:  # the next flush writes the same rows
                logger.exception("runtime snapshot flush failed")

        def step() -> None:
            try:
                queued.append(dispatch_once())
                if time.monotonic() - marked["at"] >= 1.0:
                    marked["at"] = time.monotonic()
                    markets_mark_to_market()
            except Exception:  # Redis or the database blinked: log, keep the schedule going
                logger.exception("dispatch step failed")
            if time.monotonic() - flushed["at"] >= conf.get("ENGINE_SNAPSHOT_SECONDS"):
                flush()

        steps = run_every(max(0.02, float(opts["interval"])), step, once=opts["once"])
        flush()
        if opts["once"]:
            self.stdout.write(f"queued {sum(queued)} tick(s)")
        else:
            self.stdout.write(f"dispatcher stopped after {steps} step(s)")
