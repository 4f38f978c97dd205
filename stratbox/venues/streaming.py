"""Quotes from a venue stream with a REST polling fallback, for any adapter.

The stream runs in a background thread (the venue client reconnects on its own); this loop watches
it and, whenever no streamed quote arrived for `stale_after` seconds (a dropped socket, a stream
that never connected), polls the venue's REST quotes every `poll_interval` until the stream
delivers again. The handler therefore sees quotes through drops, and `health.polling` says which
path is feeding it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from stratbox.venues.base import Quote, QuoteHandler, StreamHealth, VenueError, VenueOrder

log = logging.getLogger(__name__)


def stream_with_polling(
    *,
    run_stream: Callable[[QuoteHandler, threading.Event], None] | None,
    poll: Callable[[], dict[str, Quote]],
    on_quote: QuoteHandler,
    stop: threading.Event,
    health: StreamHealth,
    stale_after: float = 5.0,
    poll_interval: float = 1.0,
) -> None:
    last_streamed = [0.0]

    def streamed(quote: Quote) -> None:
        last_streamed[0] = time.monotonic()
        health.last_quote_ts = quote.ts
        on_quote(quote)

    thread = None
    if run_stream is not None:
        thread = threading.Thread(target=run_stream, args=(streamed, stop), name="venue-stream", daemon=True)
        thread.start()
    started = time.monotonic()
    while not stop.is_set():
        quiet_since = max(last_streamed[0], started)
        if run_stream is None or time.monotonic() - quiet_since >= stale_after:
            health.polling = True
            try:
                for quote in poll().values():
                    health.last_quote_ts = quote.ts
                    on_quote(quote)
            except VenueError as exc:
                health.errors = [*health.errors[-9:], exc.message]
                log.warning("venue quote poll failed: %s", exc)
            stop.wait(poll_interval)
        else:
            health.polling = False
            stop.wait(min(poll_interval, stale_after / 2))
    if thread is not None:
        thread.join(timeout=10)


RECOVER = object()  # put by a user stream after every (re)connect: the gap is to be read over REST


def reports_in_this_thread(
    run: Callable[[Callable[[object], None]], None],
    on_report: Callable[[VenueOrder], None],
    recover: Callable[[], object],
) -> None:
    """Run a user stream (`run(emit)`, an event loop in a thread of its own) and deliver what it emits
    here, in the calling thread: `on_report` may then block and use the database (Django refuses
    that inside an event loop), and the stream keeps reading meanwhile. `RECOVER` runs `recover()`
    here too, in order: the REST reads of a gap come before the events that followed the reconnect."""
    items: queue.Queue[object] = queue.Queue()
    thread = threading.Thread(target=run, args=(items.put,), name="venue-user-stream", daemon=True)
    thread.start()
    while True:
        try:
            item = items.get(timeout=0.1)
        except queue.Empty:
            if not thread.is_alive() and items.empty():
                break
            continue
        if item is RECOVER:
            recover()
        elif isinstance(item, VenueOrder):
            on_report(item)
    thread.join(timeout=10)
