"""The runtime's PostgreSQL snapshot: one statement copies exactly what Redis holds."""

from __future__ import annotations

from django.core.management import call_command

from stratbox.engine import runtime
from stratbox.engine.control import pause_runtime
from stratbox.engine.models import InstanceRuntime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.snapshots import snapshot_flush
from stratbox.engine.ticks.tick import tick_run


def _tick(inst, ahead: float = 0.0):
    rt = runtime.rt_get(str(inst.pk))
    return tick_run(inst.pk, rt["next_due_at"] + ahead)


def _stored(inst) -> dict:
    row = InstanceRuntime.objects.get(instance=inst)
    return {
        "fingerprint": row.fingerprint,
        "config": row.config,
        "state": row.state,
        "state_rev": row.state_rev,
        "tick_seq": row.tick_seq,
        "paused": row.paused,
        "pause_reason": row.pause_reason or None,
        "last_tick_at": row.last_tick_at.timestamp() if row.last_tick_at else None,
        "last_error": row.last_error,
        "consecutive_failures": row.consecutive_failures,
    }


def _in_redis(inst) -> dict:
    rt = runtime.rt_get(str(inst.pk))
    return {name: rt[name] for name in _stored(inst)}


def test_flush_copies_the_redis_runtime_of_every_dirty_instance(instance_factory, quote):
    ok = instance_factory(mode="observe", config={"note": 'ünïcode "quoted"'})
    failing = instance_factory(mode="observe", config={"crash_at": 1})
    paused = instance_factory(mode="observe")
    reconcile()
    assert _tick(ok).status == "ok"
    assert _tick(ok, ahead=1).status == "ok"
    assert _tick(failing).status == "error"
    assert _tick(paused).status == "ok"
    pause_runtime(paused, "USER")
    assert runtime.r().sismember(runtime.DIRTY_KEY, str(ok.pk))

    written = snapshot_flush()

    assert written == 3
    assert not runtime.r().smembers(runtime.DIRTY_KEY)
    for inst in (ok, failing, paused):
        stored, live = _stored(inst), _in_redis(inst)
        assert stored.pop("last_tick_at") is not None
        assert (
            abs(
                live.pop("last_tick_at") - InstanceRuntime.objects.get(instance=inst).last_tick_at.timestamp()
            )
            < 1e-3
        )
        assert stored == live
    assert _stored(ok)["state"] == {"n": 2, "inits": 1} and _stored(ok)["state_rev"] == 2
    assert _stored(ok)["config"]["note"] == 'ünïcode "quoted"'
    assert _stored(failing)["last_error"]["code"] == "RUNTIME_ERROR"
    assert _stored(failing)["consecutive_failures"] == 1
    assert _stored(paused)["paused"] and _stored(paused)["pause_reason"] == "USER"

    # A later flush updates the same row in place.
    assert _tick(ok, ahead=2).status == "ok"
    assert snapshot_flush() == 1
    assert _stored(ok)["state"] == {"n": 3, "inits": 1}
    assert InstanceRuntime.objects.filter(instance=ok).count() == 1


def test_flush_skips_unloaded_and_deleted_instances(instance_factory, quote):
    kept = instance_factory(mode="observe")
    deleted = instance_factory(mode="observe", config={"every": 1000})  # no orders: it can be deleted
    reconcile()
    assert _tick(kept).status == "ok" and _tick(deleted).status == "ok"
    gone = str(deleted.pk)
    InstanceRuntime.objects.filter(instance=deleted).delete()
    deleted.delete()  # its Redis runtime is still there until the next reconcile
    runtime.r().sadd(runtime.DIRTY_KEY, gone, "00000000-0000-0000-0000-000000000000")

    assert snapshot_flush() == 1
    assert list(InstanceRuntime.objects.values_list("instance_id", flat=True)) == [kept.pk]


def test_dispatcher_flushes_when_it_stops(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    assert _tick(inst).status == "ok"
    assert InstanceRuntime.objects.get(instance=inst).state == {"n": 0, "inits": 1}  # the load's snapshot

    call_command("run_dispatcher", "--once")

    assert InstanceRuntime.objects.get(instance=inst).state == {"n": 1, "inits": 1}


def test_flush_all_goes_past_batches_of_unloaded_instances(instance_factory, quote):
    from stratbox.engine.snapshots import flush_all

    inst = instance_factory(mode="observe")
    reconcile()
    assert _tick(inst).status == "ok"
    r = runtime.r()
    # Ids whose runtime is gone (unloaded since they ticked): their batches write no row.
    r.sadd(runtime.DIRTY_KEY, *[f"00000000-0000-0000-0000-{n:012d}" for n in range(3)])

    assert flush_all(batch=1) == 1  # the loaded one, in whichever batch it came

    assert InstanceRuntime.objects.get(instance=inst).state == {"n": 1, "inits": 1}
    assert not r.scard(runtime.DIRTY_KEY)  # a batch that wrote nothing did not end the flush


def test_stats_rollup_creates_then_increments_in_batches_and_skips_deleted_instances(instance_factory):
    from datetime import UTC, datetime

    from stratbox.engine.models import InstanceStats
    from stratbox.engine.snapshots import stats_rollup

    a, b, gone = (instance_factory(mode="observe") for _ in range(3))
    r = runtime.r()

    def count(inst, **deltas):
        pipe = r.pipeline()
        runtime.stats_incr(pipe, str(inst.pk), **deltas)
        pipe.execute()

    count(a, runs=3, ok=2, failed=1)
    count(b, runs=1, skipped=1)
    count(gone, runs=5)
    r.hset(runtime.stats_key(str(a.pk)), "last_run_at", 1_700_000_000.5)
    gone_id = gone.pk
    gone.delete()

    assert stats_rollup(batch=1, pause=0.001) == 2  # one statement per instance; the deleted one skipped
    first = {s.instance_id: s for s in InstanceStats.objects.filter(instance__in=[a, b])}
    assert (first[a.pk].runs, first[a.pk].ok, first[a.pk].failed) == (3, 2, 1)
    assert first[a.pk].last_run_at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)
    assert (first[b.pk].runs, first[b.pk].skipped, first[b.pk].last_run_at) == (1, 1, None)
    assert not InstanceStats.objects.filter(instance_id=gone_id).exists()
    assert not r.exists(runtime.stats_key(str(gone_id)))  # taken: its deltas do not come back

    count(a, runs=2, orders=4)
    r.hset(runtime.stats_key(str(a.pk)), "last_run_at", 1_600_000_000)  # older: the newest is kept
    assert stats_rollup() == 1
    again = InstanceStats.objects.get(instance=a)
    assert (again.runs, again.ok, again.orders) == (5, 2, 4)
    assert again.last_run_at == datetime.fromtimestamp(1_700_000_000.5, tz=UTC)
    assert stats_rollup() == 0  # nothing left to move
