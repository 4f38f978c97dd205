"""Engine events reach the Channels groups of the instance and of its tenant, after commit, in order."""

from __future__ import annotations

import asyncio

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from stratbox.engine import events, runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run


async def _collect(layer, channel, n, timeout=5.0):
    out = []

    async def take():
        while len(out) < n:
            out.append(await layer.receive(channel))

    await asyncio.wait_for(take(), timeout)
    return out


def test_tick_publishes_log_action_and_run_events_after_commit(
    instance_factory, quote, tenant, django_capture_on_commit_callbacks
):
    inst = instance_factory(mode="observe")
    reconcile()
    layer = get_channel_layer()
    inst_channel = async_to_sync(layer.new_channel)()
    tenant_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.instance_group(inst.pk), inst_channel)
    async_to_sync(layer.group_add)(events.tenant_group(tenant.pk), tenant_channel)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tick_run(inst.pk, runtime.rt_get(str(inst.pk))["next_due_at"])
    assert callbacks  # nothing is sent before the commit
    for callback in callbacks:
        callback()
    got = async_to_sync(_collect)(layer, inst_channel, 3)
    assert [m["kind"] for m in got] == ["log", "action", "run"]
    assert all(m["type"] == "instance.event" and m["instance_id"] == str(inst.pk) for m in got)
    assert [m["seq"] for m in got] == sorted(m["seq"] for m in got) and len({m["seq"] for m in got}) == 3
    assert got[1]["data"]["kind"] == "shadow" and got[2]["data"]["status"] == "ok"
    assert got[0]["data"]["msg"].startswith("tick 1 ")
    tenant_got = async_to_sync(_collect)(layer, tenant_channel, 3)
    assert [m["seq"] for m in tenant_got] == [m["seq"] for m in got]


def test_a_full_publisher_queue_drops_and_counts_instead_of_blocking():
    publisher = events._Publisher(start=False, size=5)  # nobody drains it: as if the layer hung
    for _ in range(15):
        publisher.submit(["instance.x"], {"type": "instance.event"})
    assert publisher.queue.qsize() == 5
    assert int(runtime.r().get(events.DROPPED_KEY) or 0) == 10


def test_a_batch_builds_events_only_for_watched_instances(
    instance_factory, quote, tenant, django_capture_on_commit_callbacks, monkeypatch
):
    from stratbox.engine.ticks.batch import tick_run_batch

    watched = instance_factory(mode="observe")
    quiet = instance_factory(mode="observe")
    reconcile()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.instance_group(watched.pk), channel)
    pairs = [(watched.pk, tenant.pk), (quiet.pk, tenant.pk)]
    assert events.audience(pairs) == {str(watched.pk)}

    def due(inst):
        return (str(inst.pk), runtime.rt_get(str(inst.pk))["next_due_at"])

    submitted = []
    real_submit = events._submit
    monkeypatch.setattr(events, "_submit", lambda *a: submitted.append(a[1]) or real_submit(*a))
    with django_capture_on_commit_callbacks(execute=True):
        assert [o.status for o in tick_run_batch([due(quiet)])] == ["ok"]
    assert submitted == []  # nobody watches: nothing built, nothing queued
    with django_capture_on_commit_callbacks(execute=True):
        assert [o.status for o in tick_run_batch([due(watched)])] == ["ok"]
    assert submitted == [str(watched.pk)]
    assert [m["kind"] for m in async_to_sync(_collect)(layer, channel, 3)] == ["log", "action", "run"]
    # Watching the tenant (its dashboard) makes every instance of it watched.
    async_to_sync(layer.group_add)(events.tenant_group(tenant.pk), async_to_sync(layer.new_channel)())
    assert events.audience(pairs) == {str(watched.pk), str(quiet.pk)}
