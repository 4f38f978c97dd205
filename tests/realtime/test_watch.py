"""The watch registry behind on-demand rendering, and the instance socket that feeds it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from frontend import consumers
from stratbox.engine import watch
from tests.realtime.conftest import open_socket, receive_json, refused_code, run

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_a_watch_expires_without_renewal() -> None:
    """A crashed server never releases its watchers: they lapse at their TTL."""
    iid = str(uuid.uuid4())
    assert not watch.instance_is_watched(iid)
    assert watch.watch_touch(iid, 0.3, watcher="w1") == 1
    assert watch.instance_is_watched(iid)
    time.sleep(0.15)
    watch.watch_touch(iid, 0.3, watcher="w1")  # renewed mid-way
    time.sleep(0.2)
    assert watch.instance_is_watched(iid)
    assert wait_for(lambda: not watch.instance_is_watched(iid), timeout=1.0)
    assert not watch.instance_is_watched(iid)


def test_release_keeps_the_instance_watched_while_another_watcher_remains() -> None:
    iid = str(uuid.uuid4())
    watch.watch_touch(iid, 10, watcher="a")
    assert watch.watch_touch(iid, 10, watcher="b") == 2
    assert watch.watch_release(iid, "a") == 1
    assert watch.instance_is_watched(iid)
    assert watch.watch_release(iid, "b") == 0
    assert not watch.instance_is_watched(iid)


def test_watched_instances_answers_for_many_ids_at_once() -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    for iid in ids[::5]:
        watch.watch_touch(iid, 10, watcher="w")
    watch.watch_touch(ids[1], 0.05, watcher="w")  # about to lapse
    time.sleep(0.1)
    assert watch.watched_instances(ids) == set(ids[::5])
    assert watch.watched_instances([]) == set()
    assert watch.watched_instances([uuid.UUID(ids[0])]) == {ids[0]}


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        watch.watch_touch("x", 0)


def test_an_open_socket_watches_its_instance_and_heartbeats_renew_it(
    instance: Any, other_instance: Any, token: str, other_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "WATCH_TTL_SECONDS", 0.8)
    monkeypatch.setattr(consumers, "HEARTBEAT_MIN_INTERVAL", 0.0)
    iid = str(instance.pk)

    async def body() -> dict[str, Any]:
        import asyncio

        states: dict[str, Any] = {"before": watch.instance_is_watched(iid)}
        # Tenant B's refused attempt never registers a watch on A's instance.
        states["refused"] = await refused_code(f"/ws/instances/{iid}/", token=other_token)
        states["after_refused"] = watch.instance_is_watched(iid)
        first, _ = await open_socket(f"/ws/instances/{iid}/", token=token)
        second, _ = await open_socket(f"/ws/instances/{iid}/", token=token)
        states["open"] = watch.instance_is_watched(iid)
        for _ in range(3):  # 1.5 s of heartbeats: longer than the TTL, still watched
            await asyncio.sleep(0.5)
            for comm in (first, second):
                await comm.send_json_to({"type": "heartbeat"})
                assert (await receive_json(comm))["kind"] == "pong"
        states["renewed"] = watch.instance_is_watched(iid)
        await first.disconnect()
        states["one_left"] = watch.instance_is_watched(iid)
        await second.disconnect()
        states["all_gone"] = watch.instance_is_watched(iid)
        states["unwatched_other"] = watch.instance_is_watched(str(other_instance.pk))
        return states

    assert run(body) == {
        "before": False,
        "refused": 4404,
        "after_refused": False,
        "open": True,
        "renewed": True,
        "one_left": True,
        "all_gone": False,
        "unwatched_other": False,
    }


def test_a_silent_socket_stops_watching_after_the_ttl(
    instance: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No heartbeat (a frozen tab): the instance is no longer watched although the socket is open."""
    monkeypatch.setattr(consumers, "WATCH_TTL_SECONDS", 0.3)
    iid = str(instance.pk)

    async def body() -> tuple[bool, bool]:
        import asyncio

        comm, _ = await open_socket(f"/ws/instances/{iid}/", token=token)
        watched = watch.instance_is_watched(iid)
        await asyncio.sleep(0.5)
        lapsed = not watch.instance_is_watched(iid)
        await comm.disconnect()
        return watched, lapsed

    assert run(body) == (True, True)
