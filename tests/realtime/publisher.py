"""A publisher in its own process, as a Celery worker would be (run by the realtime tests).

    publisher.py raw <group> <instance_id> <count> [kind]   group_send `count` events, seq 1..count
    publisher.py engine <tenant_id> <instance_id> <count> <kind>
        publish through `stratbox.engine.events.publish_now` (the engine's real publisher), then
        stay alive until stdin closes (its sender thread dies with the process).

Prints one JSON line: {"sent": count, "elapsed": seconds}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

import django  # noqa: E402

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402


def raw(group: str, instance_id: str, count: int, kind: str = "action") -> float:
    layer = get_channel_layer()

    async def send_all() -> float:
        started = time.perf_counter()
        for seq in range(1, count + 1):
            await layer.group_send(
                group,
                {
                    "type": "instance.event",
                    "kind": kind,
                    "instance_id": instance_id,
                    "data": {"n": seq},
                    "seq": seq,
                    "ts": time.time(),
                },
            )
        return time.perf_counter() - started

    return async_to_sync(send_all)()


def engine(tenant_id: str, instance_id: str, count: int, kind: str) -> float:
    from stratbox.engine.events import publish_now

    started = time.perf_counter()
    for n in range(1, count + 1):
        publish_now(tenant_id=tenant_id, instance_id=instance_id, kind=kind, data={"n": n})
    return time.perf_counter() - started


if __name__ == "__main__":
    mode, a, b, n, *rest = sys.argv[1:]
    elapsed = raw(a, b, int(n), *rest) if mode == "raw" else engine(a, b, int(n), rest[0])
    print(json.dumps({"sent": int(n), "elapsed": elapsed}), flush=True)
    if mode == "engine":
        sys.stdin.read()  # stay until the test has heard everything; then exit normally
