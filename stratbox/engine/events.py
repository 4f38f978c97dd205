"""Dashboard events published by the engine over the Channels layer.

Groups: `instance.<uuid>` (one instance) and `tenant.<uuid>` (every instance of a tenant).
Payload: `{"type": "instance.event", "kind": "status"|"log"|"action"|"run"|"widgets"|"order",
"instance_id": str, "data": {...}, "seq": int, "ts": float}`.

Events are sent only after the surrounding transaction commits (`transaction.on_commit`) and never
block a worker: they go to a bounded in-process queue drained by one background thread with its
own event loop; a full queue or a full channel drops the event and counts it
(`sbx:eng:events:dropped` in Redis).

The publisher never keeps a process alive: its thread is a daemon, and an `atexit` hook sends it a
stop sentinel, lets it flush what is queued for at most `FLUSH_TIMEOUT` seconds and joins it with
that timeout (a management command that publishes and exits still delivers its events; a hung
channel layer costs at most the timeout). After shutdown, publishing drops and counts.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

import redis
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from django.db import transaction

from stratbox.engine import runtime

logger = logging.getLogger(__name__)

KINDS = ("status", "log", "action", "run", "widgets", "order")
SEQ_KEY = runtime.PREFIX + "events:seq:{}"
DROPPED_KEY = runtime.PREFIX + "events:dropped"
QUEUE_SIZE = 10_000
# Events taken off the queue at once (one subscriber check covers them all).
DRAIN = 500
# At interpreter exit, queued events get this long to be sent before the process exits anyway.
FLUSH_TIMEOUT = 2.0
# Put on the queue to stop the thread (after everything queued before it has been sent).
_STOP: Any = object()


def instance_group(instance_id: Any) -> str:
    return f"instance.{instance_id}"


def tenant_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}"


class _Publisher:
    """One daemon thread per process sending queued events through the channel layer."""

    def __init__(self, *, start: bool = True, size: int = QUEUE_SIZE) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.pid = os.getpid()
        self.stopped = threading.Event()
        # daemon: whatever happens to the layer, this thread can never hold the interpreter open.
        self.thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
        if start:
            self.thread.start()

    def _run(self) -> None:
        layer = get_channel_layer()
        loop = asyncio.new_event_loop()  # private to this thread: the worker's own code never waits on it
        live_groups = _group_checker(layer)
        stop = False
        try:
            while not stop:
                items = [self.queue.get()]
                while len(items) < DRAIN:  # take what is queued: one membership check for all of it
                    try:
                        items.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                stop = any(item is _STOP for item in items)
                messages = [item for item in items if item is not _STOP]
                if layer is None or not messages:
                    continue
                live = live_groups({g for groups, _ in messages for g in groups}) if live_groups else None
                for groups, message in messages:
                    for group in groups:
                        if live is not None and group not in live:
                            continue  # nobody subscribed: a send would cost two round trips for nothing
                        try:
                            loop.run_until_complete(layer.group_send(group, message))
                        except ChannelFull:
                            _count_drop()
                        except Exception:  # the layer is down: drop, count, keep the worker running
                            logger.warning("engine event to %s dropped", group, exc_info=True)
                            _count_drop()
        finally:
            self.stopped.set()
            try:
                loop.close()
            except Exception:  # noqa: S110 - a loop that cannot close is garbage at exit anyway
                pass

    def submit(self, groups: list[str], message: dict[str, Any]) -> None:
        if self.stopped.is_set():
            _count_drop()
            return
        try:
            self.queue.put_nowait((groups, message))
        except queue.Full:
            _count_drop()

    def stop(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Flush what is queued (at most `timeout` seconds) and end the thread; True if it ended."""
        if not self.thread.is_alive():
            self.stopped.set()
            return True
        deadline = time.monotonic() + timeout
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the layer is hung and the queue full: give up, the daemon dies with us
            return False
        self.thread.join(max(deadline - time.monotonic(), 0.0))
        return not self.thread.is_alive()


def _group_checker(layer: Any) -> Any:
    """`groups -> the subset with at least one subscriber`, in one Redis round trip, or None.

    Most ticks have no audience (nobody has the instance or its tenant open): with channels-redis a
    group send is two round trips plus encoding even for an empty group, ~1 ms of a worker's CPU
    per tick. A group exists as a sorted set while it has members (`group_add`), so one pipelined
    EXISTS per drained chunk answers for all of them. A socket that subscribes right after the
    check misses only what was sent before it subscribed. Other layers (in-memory, sharded Redis):
    None, every event is sent.
    """
    key_of = getattr(layer, "_group_key", None)
    hosts = getattr(layer, "hosts", None)
    if key_of is None or not hosts or len(hosts) != 1 or not isinstance(hosts[0].get("address"), str):
        return None

    client = redis.Redis.from_url(hosts[0]["address"])

    def live(groups: set[str]) -> set[str] | None:
        ordered = sorted(groups)
        pipe = client.pipeline(transaction=False)
        for group in ordered:
            pipe.exists(key_of(group))
        try:
            flags = pipe.execute()
        except Exception:  # cannot tell: send everything, the layer reports its own failures
            return None
        return {group for group, flag in zip(ordered, flags, strict=True) if flag}

    return live


_checker: tuple[int, Any] | None = None


def audience(pairs: list[tuple[Any, Any]]) -> set[str] | None:
    """Of `(instance_id, tenant_id)` pairs, the instance ids somebody watches (its instance group or
    its tenant's has a subscriber), in one Redis round trip; None when that cannot be told.

    A batch of ticks asks once, then builds and queues events only for watched instances: with
    nobody watching, publishing costs nothing but the seq reservation (each tick still advances the
    instance's seq, so seqs stay monotonic). A socket that subscribes right after the check misses
    only the events of the ticks already under way, as with the publisher's own check."""
    global _checker
    if not pairs:
        return set()
    if _checker is None or _checker[0] != os.getpid():
        try:
            _checker = (os.getpid(), _group_checker(get_channel_layer()))
        except Exception:
            logger.warning("no channel layer to ask for an audience", exc_info=True)
            _checker = (os.getpid(), None)
    live_groups = _checker[1]
    if live_groups is None:
        return None
    groups = {instance_group(i) for i, _ in pairs} | {tenant_group(t) for _, t in pairs}
    live = live_groups(groups)
    if live is None:
        return None
    return {str(i) for i, t in pairs if instance_group(i) in live or tenant_group(t) in live}


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()
_shutting_down = False


def _get_publisher() -> _Publisher | None:
    global _publisher
    with _publisher_lock:
        if _shutting_down:
            return None  # never start a thread while the interpreter is exiting
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = _Publisher()
        return _publisher


def shutdown(timeout: float = FLUSH_TIMEOUT) -> bool:
    """Stop this process's publisher after flushing (bounded); later events are dropped and counted.

    Registered with `atexit`; a forked child (Celery prefork) only ever stops its own publisher.
    """
    global _shutting_down
    with _publisher_lock:
        _shutting_down = True
        publisher = _publisher if _publisher is not None and _publisher.pid == os.getpid() else None
    return publisher.stop(timeout) if publisher is not None else True


atexit.register(shutdown)


def _count_drop() -> None:
    try:
        runtime.r().incr(DROPPED_KEY)
    except Exception:  # noqa: S110 - counting a drop must never raise
        pass


def build(*, kind: str, instance_id: Any, data: dict[str, Any], seq: int) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}")
    return {
        "type": "instance.event",
        "kind": kind,
        "instance_id": str(instance_id),
        "data": data,
        "seq": seq,
        "ts": time.time(),
    }


def publish(*, tenant_id: Any, instance_id: Any, kind: str, data: dict[str, Any]) -> None:
    """Publish after the current transaction commits (at once when there is none)."""
    transaction.on_commit(
        lambda: publish_now(tenant_id=tenant_id, instance_id=instance_id, kind=kind, data=data)
    )


def publish_many(*, tenant_id: Any, instance_id: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    if events:
        transaction.on_commit(lambda: _send(tenant_id, instance_id, events))


def publish_reserved(
    *, tenant_id: Any, instance_id: Any, events: list[tuple[str, dict[str, Any]]], last_seq: int
) -> None:
    """Publish events whose seqs (`last_seq - len(events) + 1 ... last_seq`) are reserved, after commit."""
    if events:
        transaction.on_commit(lambda: _submit(tenant_id, instance_id, events, last_seq))


def publish_now(*, tenant_id: Any, instance_id: Any, kind: str, data: dict[str, Any]) -> None:
    _send(tenant_id, instance_id, [(kind, data)])


def publish_order_events(tenant_id: Any, instance_id: Any, payloads: list[dict[str, Any]]) -> None:
    """Order status changes (`stratbox.trading.order_events`, already committed) as `order` events.

    Registered by the engine's AppConfig; a tick sends its own instance's with the tick's events.
    Nobody watching (one round trip asks): no seq is reserved, nothing is queued."""
    watched = audience([(instance_id, tenant_id)])
    if watched is not None and str(instance_id) not in watched:
        return
    _send(tenant_id, instance_id, [("order", p) for p in payloads])


def _send(tenant_id: Any, instance_id: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        # One round trip reserves a block of sequence numbers: seq is monotonic per instance across workers.
        last = runtime.r().incrby(SEQ_KEY.format(instance_id), len(events))
    except Exception:
        logger.warning("engine events for %s dropped (redis)", instance_id, exc_info=True)
        return
    _submit(tenant_id, instance_id, events, last)


def _submit(tenant_id: Any, instance_id: Any, events: list[tuple[str, dict[str, Any]]], last: int) -> None:
    first = last - len(events) + 1
    publisher = _get_publisher()
    if publisher is None:
        for _ in events:
            _count_drop()
        return
    groups = [instance_group(instance_id), tenant_group(tenant_id)]
    for offset, (kind, data) in enumerate(events):
        publisher.submit(groups, build(kind=kind, instance_id=instance_id, data=data, seq=first + offset))
