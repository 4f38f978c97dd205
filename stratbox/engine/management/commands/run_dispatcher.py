"""`manage.py run_dispatcher [--once] [--interval S]`: the engine's dispatcher process.

Just after every multiple of `ENGINE_DISPATCH_INTERVAL` (50 ms) on the wall clock — the grid the
instances' phases lie on — it queues the slots that fell due (`dispatcher.dispatch_once`): a batch
is published when its ticks are due, so a worker starts it at once, with no Celery ETA timer in
between. Housekeeping runs beside it in a thread of its own, so that it never holds the
schedule up: once a second it fills the resting paper limit orders the latest quotes crossed, and
every `ENGINE_SNAPSHOT_SECONDS` it copies the dirty runtimes and the run counters into PostgreSQL
(`snapshots.flush_all`, also once more on a clean stop).

It used to be a beat task, but a beat message waits in the broker behind the tick batches a busy
worker has reserved — seconds under load, and every slot that fell due meanwhile was coalesced.
This process does not queue behind anything. Between steps it waits on the quote ticks' wake-up
token (`runtime.quote_wait`) and queues those at once (`dispatcher.dispatch_quotes`). Several may run (one per machine for redundancy): the
due set is taken atomically in Redis, so no slot is queued twice. SIGTERM / SIGINT finish the
current step and exit cleanly.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections, connections

from stratbox.engine import conf, runtime
from stratbox.engine.dispatcher import dispatch_once, dispatch_quotes, markets_mark_to_market
from stratbox.engine.snapshots import flush_all
from stratbox.loops import run_every

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Queue the engine's due ticks continuously (and fill crossed resting paper orders)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one step, then exit (tests, cron)")
        parser.add_argument(
            "--interval", type=float, default=None, help="seconds between steps (ENGINE_DISPATCH_INTERVAL)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        queued: list[int] = []

        def step() -> None:
            try:
                queued.append(dispatch_once())
            except Exception:  # Redis or the database blinked: log, keep the schedule going
                logger.exception("dispatch step failed")

        def wait(seconds: float) -> None:
            # Between steps, a quote tick that falls due (a quote marked it, or its batch ended with
            # a newer quote pending) is queued at once rather than at the next grid point.
            try:
                if runtime.quote_wait(seconds):
                    dispatch_quotes()
            except Exception:
                logger.exception("quote dispatch failed")
                time.sleep(seconds)

        if opts["once"]:
            step()
            _housekeeping_step(flush=True)
            self.stdout.write(f"queued {sum(queued)} tick(s)")
            return
        stop = threading.Event()
        keeper = threading.Thread(target=_housekeeping, args=(stop,), name="housekeeping", daemon=True)
        keeper.start()
        interval = opts["interval"] if opts["interval"] is not None else conf.get("ENGINE_DISPATCH_INTERVAL")
        try:
            steps = run_every(max(0.005, float(interval)), step, align=True, wait=wait)
        finally:
            stop.set()
            keeper.join(timeout=30)
        _housekeeping_step(flush=True)
        self.stdout.write(f"dispatcher stopped after {steps} step(s)")


# The periodic flush writes a few hundred instances per statement with a pause in between: at 1,000
# instances one statement per kind made PostgreSQL and this process take both cores for a moment
# every 5 s, and the ticks due then started up to ~80 ms late.
FLUSH_BATCH = 200
FLUSH_PAUSE = 0.05


def _housekeeping_step(*, flush: bool, spread: bool = False) -> None:
    try:
        markets_mark_to_market()
    except Exception:  # the next quote is marked all the same
        logger.exception("marking to market failed")
    if flush:
        try:
            flush_all(batch=FLUSH_BATCH, pause=FLUSH_PAUSE) if spread else flush_all()
        except Exception:  # the next flush writes the same rows
            logger.exception("runtime snapshot flush failed")


def _housekeeping(stop: threading.Event) -> None:
    """Mark to market every second and flush the runtimes every `ENGINE_SNAPSHOT_SECONDS`."""
    flushed = time.monotonic()
    try:
        while not stop.wait(1.0):
            due = time.monotonic() - flushed >= conf.get("ENGINE_SNAPSHOT_SECONDS")
            if due:
                flushed = time.monotonic()
            _housekeeping_step(flush=due, spread=True)
            close_old_connections()
    finally:
        connections.close_all()  # this thread's own connection
