"""Engine events reach the Channels groups of the instance and of its tenant, after commit, in order."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from stratbox.engine import events, runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run


async def _collect(layer, channel, n, timeout=5.0, skip=()):
    out = []

    async def take():
        while len(out) < n:
            message = await layer.receive(channel)
            if message.get("kind") not in skip:
                out.append(message)

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
    got = async_to_sync(_collect)(layer, inst_channel, 4)
    # Inside the test's own transaction the shadow order commits after the tick ended, so its
    # status change goes out on that commit (the subscriber path), before the tick's events.
    assert [m["kind"] for m in got] == ["order", "log", "action", "run"]
    assert all(m["type"] == "instance.event" and m["instance_id"] == str(inst.pk) for m in got)
    seqs = [m["seq"] for m in got]
    assert seqs[1:] == list(range(seqs[1], seqs[1] + 3)) and seqs[0] > seqs[3]  # reserved on its commit
    assert (got[0]["data"]["from"], got[0]["data"]["to"]) == ("new", "shadow")
    assert got[2]["data"]["kind"] == "shadow" and got[3]["data"]["status"] == "ok"
    assert got[0]["data"]["order_id"] == got[2]["data"]["order_id"]
    assert got[1]["data"]["msg"].startswith("tick 1 ")
    tenant_got = async_to_sync(_collect)(layer, tenant_channel, 4)
    assert [m["seq"] for m in tenant_got] == [m["seq"] for m in got]


@pytest.mark.django_db(transaction=True)
def test_a_ticks_order_status_changes_travel_with_its_events(instance_factory, quote, tenant, big_limits):
    """The order commits inside the tick: its events join the tick's batch (one seq block)."""
    inst = instance_factory(mode="active", config={"qty": 0.5})
    reconcile()
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.tenant_group(tenant.pk), channel)
    tick_run(inst.pk, runtime.rt_get(str(inst.pk))["next_due_at"])
    # The tenant's group also carries the instance's status as reconcile() loaded it (published
    # from a background thread, so it may arrive after the subscription): not the tick's batch.
    got = async_to_sync(_collect)(layer, channel, 5, skip=("status",))
    assert [m["kind"] for m in got] == ["log", "action", "order", "order", "run"]
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(seqs[0], seqs[0] + 5))  # one reserved block, in order
    changes = [(m["data"]["from"], m["data"]["to"], m["data"]["filled_qty"]) for m in got[2:4]]
    assert changes == [("new", "accepted", "0.00000000"), ("accepted", "filled", "0.50000000")]
    assert {m["data"]["order_id"] for m in got[2:4]} == {got[1]["data"]["order_id"]}
    assert all(m["data"]["tick_seq"] == got[1]["data"]["tick_seq"] for m in got[2:4])


def test_a_full_publisher_queue_drops_and_counts_instead_of_blocking():
    publisher = events._Publisher(start=False, size=5)  # nobody drains it: as if the layer hung
    for _ in range(15):
        publisher.submit(["instance.x"], {"type": "instance.event"})
    assert publisher.queue.qsize() == 5
    assert int(runtime.r().get(events.DROPPED_KEY) or 0) == 10


@pytest.mark.django_db(transaction=True)  # orders commit inside the tick, as in a worker
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
    assert submitted == [str(watched.pk)]  # one block: its order's status change travels with it
    assert [m["kind"] for m in async_to_sync(_collect)(layer, channel, 4)] == [
        "log",
        "action",
        "order",
        "run",
    ]
    # Watching the tenant (its dashboard) makes every instance of it watched.
    async_to_sync(layer.group_add)(events.tenant_group(tenant.pk), async_to_sync(layer.new_channel)())
    assert events.audience(pairs) == {str(watched.pk), str(quiet.pk)}
