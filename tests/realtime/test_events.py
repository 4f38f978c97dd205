"""Events published by another process arrive in order; floods are bounded and accounted for."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from frontend.consumers import InstanceConsumer
from tests.realtime.conftest import (
    drain,
    open_socket,
    receive_until,
    run,
    start_publisher,
)

pytestmark = pytest.mark.django_db(transaction=True)


def finish(proc: Any) -> dict[str, Any]:
    out, err = proc.communicate(input="", timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_events_from_another_process_arrive_in_order(instance: Any, token: str) -> None:
    count = 300

    async def body() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        inst, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        ten, _ = await open_socket("/ws/tenant/", token=token)
        proc = start_publisher("raw", f"instance.{instance.pk}", str(instance.pk), str(count))
        on_instance = await receive_until(inst, count, timeout=30)
        await sync_to_async(finish, thread_sensitive=False)(proc)
        extra = await drain(ten)  # the tenant socket hears nothing of the instance group
        await inst.disconnect()
        await ten.disconnect()
        return on_instance, extra

    on_instance, on_tenant = run(body)
    assert [m["seq"] for m in on_instance] == list(range(1, count + 1))
    assert [m["data"]["n"] for m in on_instance] == list(range(1, count + 1))
    assert all(m["instance_id"] == str(instance.pk) and m["kind"] == "action" for m in on_instance)
    assert on_tenant == []


def test_the_engine_publisher_reaches_instance_and_tenant_sockets_in_order(instance: Any, token: str) -> None:
    """The engine's real publisher (`stratbox.engine.events.publish_now`) in a worker-like process."""
    count = 100

    async def body() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        inst, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        ten, _ = await open_socket("/ws/tenant/", token=token)
        proc = start_publisher("engine", str(instance.tenant_id), str(instance.pk), str(count), "status")
        try:
            on_instance = await receive_until(inst, count, timeout=30)
            on_tenant = await receive_until(ten, count, timeout=30)
        finally:
            await sync_to_async(finish, thread_sensitive=False)(proc)
        await inst.disconnect()
        await ten.disconnect()
        return on_instance, on_tenant

    on_instance, on_tenant = run(body)
    for got in (on_instance, on_tenant):
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == count
        assert seqs[-1] - seqs[0] == count - 1  # consecutive: nothing lost, nothing reordered
        assert [m["data"]["n"] for m in got] == list(range(1, count + 1))
        assert {m["kind"] for m in got} == {"status"}
    assert on_instance == on_tenant


def test_a_log_flood_is_rate_limited_into_one_marker(instance: Any, token: str) -> None:
    """300 log lines at once: the burst passes, the rest is one `log_dropped` marker; order is kept."""
    count = 300

    async def body() -> list[dict[str, Any]]:
        comm, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        proc = start_publisher("raw", f"instance.{instance.pk}", str(instance.pk), str(count), "log")
        await sync_to_async(finish, thread_sensitive=False)(proc)
        got = await drain(comm, quiet=1.5)  # the marker follows within a second
        await comm.disconnect()
        return got

    got = run(body)
    lines = [m for m in got if m["kind"] == "log"]
    markers = [m for m in got if m["kind"] == "log_dropped"]
    assert InstanceConsumer.log_burst <= len(lines) < count
    assert markers and all(m["instance_id"] == str(instance.pk) for m in markers)
    assert len(markers) <= 3  # one per second at most, not one per line
    assert len(lines) + sum(m["count"] for m in markers) == count
    seqs = [m["seq"] for m in lines]
    assert seqs == sorted(seqs)


class StalledSocket:
    """An ASGI websocket peer whose transport stops draining after the handshake (a dead browser)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.unblocked = asyncio.Event()
        self.accepted = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted.set()
            return
        await self.unblocked.wait()
        self.sent.append(message)

    def texts(self) -> list[dict[str, Any]]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


def test_a_stalled_client_never_blocks_the_publisher(instance: Any, token: str) -> None:
    """The socket never drains: publishing stays fast, the outbox stays bounded, drops are counted."""
    from stratbox.asgi import application

    count = 1000
    size = InstanceConsumer.outbox_size

    async def body() -> tuple[float, int, list[dict[str, Any]]]:
        peer = StalledSocket()
        scope = {
            "type": "websocket",
            "path": f"/ws/instances/{instance.pk}/",
            "raw_path": f"/ws/instances/{instance.pk}/".encode(),
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "subprotocols": [],
        }
        app = asyncio.ensure_future(application(scope, peer.receive, peer.send))
        await peer.incoming.put({"type": "websocket.connect"})
        await asyncio.wait_for(peer.accepted.wait(), 5)
        await asyncio.sleep(0.2)  # the hello is stuck in the transport, the group is joined
        proc = start_publisher("raw", f"instance.{instance.pk}", str(instance.pk), str(count))
        result = await sync_to_async(finish, thread_sensitive=False)(proc)
        await asyncio.sleep(0.5)  # let the consumer take everything off the layer
        peer.unblocked.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            texts = peer.texts()
            if texts and texts[-1]["kind"] == "events_dropped":
                break
            await asyncio.sleep(0.05)
        await peer.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(app, 5)
        return result["elapsed"], count, peer.texts()

    elapsed, sent, texts = run(body)
    events = [m for m in texts if m["kind"] == "action"]
    markers = [m for m in texts if m["kind"] == "events_dropped"]
    # The publisher finished its 1000 sends while nobody read a byte (one Redis round trip each).
    assert elapsed < 20, elapsed
    # The consumer buffered at most `size` frames (the hello and the first `size - 1` events).
    assert texts[0]["kind"] == "hello"
    assert len(events) <= size
    assert [m["seq"] for m in events] == list(range(1, len(events) + 1))
    assert len(markers) == 1
    assert len(events) + markers[0]["count"] == sent
