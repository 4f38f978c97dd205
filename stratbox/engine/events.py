"""Dashboard events published by the engine over the Channels layer.

Groups: `instance.<uuid>` (one instance) and `tenant.<uuid>` (every instance of a tenant).
Payload: `{"type": "instance.event", "kind": "status"|"log"|"action"|"run"|"widgets",
"instance_id": str, "data": {...}, "seq": int, "ts": float}`.

Events are sent only after the surrounding transaction commits (`transaction.on_commit`) and never
block a worker: they go to a bounded in-process queue drained by one background thread with its
own event loop; a full queue or a full channel drops the event and counts it
(`sbx:eng:events:dropped` in Redis).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from typing import Any

from django.db import transaction

from stratbox.engine import runtime

logger = logging.getLogger(__name__)

KINDS = ("status", "log", "action", "run", "widgets")
SEQ_KEY = runtime.PREFIX + "events:seq:{}"
DROPPED_KEY = runtime.PREFIX + "events:dropped"
QUEUE_SIZE = 10_000


def instance_group(instance_id: Any) -> str:
    return f"instance.{instance_id}"


def tenant_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}"


class _Publisher:
    """One daemon thread per process sending queued events through the channel layer."""

    def __init__(self, *, start: bool = True, size: int = QUEUE_SIZE) -> None:
        self.queue: queue.Queue[tuple[list[str], dict[str, Any]]] = queue.Queue(maxsize=size)
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
        if start:
            self.thread.start()

    def _run(self) -> None:
        from channels.exceptions import ChannelFull
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        loop = asyncio.new_event_loop()  # private to this thread: the worker's own code never waits on it
        while True:
            groups, message = self.queue.get()
            if layer is None:
                continue
            for group in groups:
                try:
                    loop.run_until_complete(layer.group_send(group, message))
                except ChannelFull:
                    _count_drop()
                except Exception:  # the layer is down: drop, count, keep the worker running
                    logger.warning("engine event to %s dropped", group, exc_info=True)
                    _count_drop()

    def submit(self, groups: list[str], message: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait((groups, message))
        except queue.Full:
            _count_drop()


_publisher: _Publisher | None = None
_publisher_lock = threading.Lock()


def _get_publisher() -> _Publisher:
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = _Publisher()
        return _publisher


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


def publish_now(*, tenant_id: Any, instance_id: Any, kind: str, data: dict[str, Any]) -> None:
    _send(tenant_id, instance_id, [(kind, data)])


def _send(tenant_id: Any, instance_id: Any, events: list[tuple[str, dict[str, Any]]]) -> None:
    try:
        # One round trip reserves a block of sequence numbers: seq is monotonic per instance across workers.
        last = runtime.r().incrby(SEQ_KEY.format(instance_id), len(events))
    except Exception:
        logger.warning("engine events for %s dropped (redis)", instance_id, exc_info=True)
        return
    first = last - len(events) + 1
    publisher = _get_publisher()
    groups = [instance_group(instance_id), tenant_group(tenant_id)]
    for offset, (kind, data) in enumerate(events):
        publisher.submit(groups, build(kind=kind, instance_id=instance_id, data=data, seq=first + offset))
