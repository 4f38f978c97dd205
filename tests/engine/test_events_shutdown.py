"""A process that published engine events exits promptly, after delivering what it queued.

Each case runs a fresh interpreter (like a management command or a worker) that publishes through
`stratbox.engine.events` and then simply returns from its script: interpreter shutdown must neither
wait on the publisher thread nor lose the queued events.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from stratbox.engine import events, runtime

ROOT = Path(__file__).resolve().parents[2]
EXIT_WITHIN = 6.0  # seconds: start-up (~1.5 s on a loaded machine) + the bounded flush + slack

PUBLISH = """
import sys, django
django.setup()
from stratbox.engine import events
count = int(sys.argv[1])
for n in range(count):
    events.publish_now(tenant_id=sys.argv[2], instance_id=sys.argv[3], kind="log", data={"n": n})
print("published", flush=True)
"""

# The channel layer hangs (as if Redis stopped answering): the sender thread is stuck in group_send.
PUBLISH_HUNG_LAYER = """
import asyncio, sys, django
django.setup()
from channels.layers import get_channel_layer

async def hang(group, message):
    await asyncio.sleep(3600)

get_channel_layer().group_send = hang
from stratbox.engine import events
for n in range(int(sys.argv[1])):
    events.publish_now(tenant_id=sys.argv[2], instance_id=sys.argv[3], kind="log", data={"n": n})
print("published", flush=True)
"""


def _run(code: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "stratbox.settings"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,  # a regression fails here instead of hanging the suite
    )
    return proc, time.monotonic() - started


async def _drain(layer, channel: str, timeout: float) -> list[dict]:
    got: list[dict] = []
    try:
        while True:
            got.append(await asyncio.wait_for(layer.receive(channel), timeout))
    except TimeoutError:
        return got


def test_a_process_that_published_exits_promptly_and_delivers_its_events():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.instance_group("i-exit"), channel)
    proc, took = _run(PUBLISH, "40", "t-exit", "i-exit")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "published"
    assert took < EXIT_WITHIN, f"exit took {took:.1f}s"
    got = async_to_sync(_drain)(layer, channel, 1.0)
    # Everything queued before exit was flushed by the atexit hook, in order.
    assert [m["data"]["n"] for m in got] == list(range(40))
    assert int(runtime.r().get(events.DROPPED_KEY) or 0) == 0


def test_a_hung_channel_layer_delays_exit_by_the_flush_timeout_at_most():
    proc, took = _run(PUBLISH_HUNG_LAYER, "5", "t-hung", "i-hung")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "published"
    assert took < EXIT_WITHIN + events.FLUSH_TIMEOUT, f"exit took {took:.1f}s"


def test_after_shutdown_events_are_dropped_and_counted_without_a_new_thread(monkeypatch):
    monkeypatch.setattr(events, "_publisher", None)
    monkeypatch.setattr(events, "_shutting_down", False)
    publisher = events._get_publisher()
    assert publisher is not None and publisher.thread.is_alive()
    assert events.shutdown(timeout=2.0) is True
    assert not publisher.thread.is_alive()
    events.publish_now(tenant_id="t", instance_id="i-late", kind="log", data={})
    assert events._get_publisher() is None
    assert int(runtime.r().get(events.DROPPED_KEY) or 0) == 1
