"""The dispatcher: turns due slots into tick batches on the Celery queue.

The dispatcher process (`manage.py run_dispatcher`) runs this on the wall clock's multiples of
`ENGINE_DISPATCH_INTERVAL` (50 ms), the grid the instances' phases lie on (`runtime.phase`). Each
run takes the slots that fell due (or, with `ENGINE_DISPATCH_LOOKAHEAD`, will within that many
seconds) and enqueues them as `engine.run_ticks` batches: due ones at once, later ones with a
Celery ETA at their last due time. Slots are whole epoch seconds; each instance runs at a fixed
phase inside its second, and a batch is a run of instances in due order.
The due set and the "queued" marks live in Redis: which process dispatches does not matter, and
two dispatchers running at once cannot queue a slot twice (the Lua step is atomic and a tick
claims its slot).

Quote-triggered instances are marked due by the quotes themselves (`runtime.quote_mark`); each step
also takes those (`dispatch_quotes`), and between steps the process waits on a wake-up token the
marking leaves, so a quote tick is queued at once instead of at the next grid point. Their items
are `[instance_id, due, seq]`: the seq (epoch milliseconds) identifies the tick.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from celery import current_app
from django.utils import timezone

from stratbox.engine import conf, runtime
from stratbox.markets.models import Market
from stratbox.markets.quotes import quotes_get_many
from stratbox.trading.services.orders import orders_mark_to_market

Enqueue = Callable[[list[list[object]], float | None], None]


RUN_TICKS_TASK = "engine.run_ticks"  # `tasks.run_ticks_task`, sent by name: tasks imports this module


def _celery_enqueue(batch: list[list[object]], eta: float | None) -> None:
    if eta is None:
        current_app.send_task(RUN_TICKS_TASK, args=[batch])
    else:
        current_app.send_task(RUN_TICKS_TASK, args=[batch], eta=datetime.fromtimestamp(eta, tz=UTC))


def dispatch_once(
    now: float | None = None, enqueue: Enqueue | None = None, lookahead: float | None = None
) -> int:
    """Enqueue every due (or soon due) slot once; returns how many ticks were enqueued.

    Items are `[instance_id, due]` (`int(due)` is the slot). Batches take instances in due order,
    so one batch spans a short stretch of one second (at most `ENGINE_BATCH_SPAN`, never two slots).
    Its ETA is its last due time: no tick starts early, and the batch's ticks run together (one
    host round trip per tenant, one write of their states), each at most the span after its own due
    time. A batch run before its ETA still runs each tick at its own due time (see
    `ticks.batch.tick_run_batch`).
    """
    now = time.time() if now is None else now
    lookahead = conf.get("ENGINE_DISPATCH_LOOKAHEAD") if lookahead is None else lookahead
    quoted = dispatch_quotes(now, enqueue)
    items = runtime.due_take(now, lookahead=lookahead)
    if not items:
        return quoted
    items.sort(key=lambda item: item[1])
    batch_size = max(conf.get("ENGINE_TICK_BATCH"), 1)
    span = conf.get("ENGINE_BATCH_SPAN")
    send = enqueue or _celery_enqueue
    # Runs of due times no longer than the span (a batch starts at its last due time: this caps the
    # wait of its first member), never across two slots ...
    runs: list[list[tuple[str, float]]] = []
    for item in items:
        if runs and item[1] - runs[-1][0][1] <= span and int(item[1]) == int(runs[-1][0][1]):
            runs[-1].append(item)
        else:
            runs.append([item])
    # ... each split into as few batches as the size allows, of even sizes: the ticks of one grid
    # point (`runtime.phase`) are due at once, and even halves keep two worker processes equally busy.
    for run in runs:
        parts = math.ceil(len(run) / batch_size)
        for k in range(parts):
            _send_chunk(send, run[k * len(run) // parts : (k + 1) * len(run) // parts], now)
    return quoted + len(items)


def dispatch_quotes(now: float | None = None, enqueue: Enqueue | None = None) -> int:
    """Enqueue the quote ticks that are due, in even batches of at most `ENGINE_TICK_BATCH`."""
    now = time.time() if now is None else now
    items = runtime.quote_take(now)
    if not items:
        return 0
    send = enqueue or _celery_enqueue
    parts = math.ceil(len(items) / max(conf.get("ENGINE_TICK_BATCH"), 1))
    for k in range(parts):
        chunk = items[k * len(items) // parts : (k + 1) * len(items) // parts]
        send([[iid, due, seq] for iid, due, seq in chunk], None)
    return len(items)


def _send_chunk(send: Enqueue, chunk: list[tuple[str, float]], now: float) -> None:
    last = chunk[-1][1]
    send([[iid, due] for iid, due in chunk], last if last > now + 0.005 else None)


MTM_KEY = runtime.PREFIX + "mtm:{}"


def markets_mark_to_market(now: float | None = None) -> int:
    """Fill resting paper limit orders the latest quote crossed, once per fresh quote per market.

    Markets cannot import trading (layering), so the engine drives it from the dispatcher cycle.
    A quote is processed once cluster-wide (a Redis marker per market and quote timestamp).
    """
    hours = dict(Market.objects.filter(active=True).values_list("pk", "trading_hours"))
    quotes = quotes_get_many(list(hours))
    r = runtime.r()
    done = 0
    for market_id, quote in quotes.items():
        marker = str(quote.get("ts"))
        if r.set(MTM_KEY.format(market_id), marker, ex=60, get=True) == marker:
            continue  # this quote was already marked by some dispatcher
        orders_mark_to_market(
            market_id=market_id, quote=quote, now=timezone.now(), trading_hours=hours.get(market_id)
        )
        done += 1
    return done
