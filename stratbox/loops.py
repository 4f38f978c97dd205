"""`run_every`: the loop of the platform's small long-running processes (feed, dispatcher).

Calls `step()` once per interval on a fixed schedule; SIGTERM / SIGINT finish the current step and
return (the process exits cleanly). Between steps it drops database connections that died or
outlived CONN_MAX_AGE, sleeps in short slices (a signal ends it promptly) and, after falling far
behind (a suspended machine), resumes from now instead of bursting.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

ALIGN_DELAY = 0.001  # an aligned step starts this long after its grid point (float rounding)


def run_every(
    interval: float,
    step: Callable[[], Any],
    *,
    once: bool = False,
    align: bool = False,
    wait: Callable[[float], Any] | None = None,
) -> int:
    """Run `step` every `interval` seconds until a signal (or once); returns the number of steps.

    `align`: steps start on the wall clock's multiples of `interval` (just after them); a step
    that overruns skips the grid points it covered instead of running late ones back to back.
    `wait(seconds)`: how to spend the time between steps (default `time.sleep`; the dispatcher
    waits for quote ticks meanwhile)."""
    sleep = wait or time.sleep
    stop = {"requested": False}

    def _request_stop(signum: int, _frame: Any) -> None:
        stop["requested"] = True

    previous = {s: signal.signal(s, _request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    steps = 0
    try:
        next_at = time.monotonic()
        while not stop["requested"]:
            step()
            steps += 1
            if once:
                break
            close_old_connections()
            if align:
                now = time.time()
                next_at = time.monotonic() + (math.floor(now / interval) + 1) * interval + ALIGN_DELAY - now
            else:
                next_at += interval
            while not stop["requested"]:
                remaining = next_at - time.monotonic()
                if remaining <= 0:
                    break
                sleep(min(remaining, 0.1))
            if time.monotonic() - next_at > 5 * interval:
                next_at = time.monotonic()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return steps
