"""The reconciler: desired state (the database) -> runtime (Redis + sandbox hosts)."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from stratbox.engine import runtime
from stratbox.engine.models import InstanceRuntime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.instances.services import instance_set_mode, instance_update_config
from stratbox.trading.models import Order


def _rt(inst):
    return runtime.rt_get(str(inst.pk))


def _tick(inst):
    rt = _rt(inst)
    return tick_run(inst.pk, rt["next_due_at"])


def test_mode_on_loads_with_init_and_off_unloads(instance_factory, quote, user):
    on = instance_factory(mode="observe")
    off = instance_factory(mode="off")
    report = reconcile()
    assert report.loaded == [str(on.pk)]
    rt = _rt(on)
    assert rt["loaded"] and rt["state"] == {"n": 0, "inits": 1} and rt["state_rev"] == 0
    assert runtime.r().zscore(runtime.DUE_KEY, str(on.pk)) is not None
    assert _rt(off) is None
    # the fresh init() is snapshotted to PostgreSQL at once
    assert InstanceRuntime.objects.get(instance=on).state == {"n": 0, "inits": 1}

    assert _tick(on).status == "ok"
    from django.utils import timezone

    from stratbox.trading.services.orders import order_place

    resting = order_place(
        instance=on,
        intent={
            "kind": "order",
            "client_order_id": f"{on.pk}-7-1",
            "side": "buy",
            "qty": 0.01,
            "type": "limit",
            "price": 50.0,
            "tag": None,
        },
        quote=quote,
        mode="observe",
        now=timezone.now(),
    ).order
    instance_set_mode(instance=on, actor=user, mode="off")
    on.refresh_from_db()
    report = reconcile()
    assert report.unloaded == [str(on.pk)]
    assert _rt(on) is None
    assert runtime.r().zscore(runtime.DUE_KEY, str(on.pk)) is None
    assert not InstanceRuntime.objects.filter(instance=on).exists()
    resting.refresh_from_db()
    assert resting.status == "cancelled"  # turning an instance off cancels its open orders


def test_reconcile_is_idempotent(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    before = _rt(inst)
    report = reconcile()
    assert not report.changed and report.unchanged == 1
    after = _rt(inst)
    assert after["load_id"] == before["load_id"]
    assert after["state"] == before["state"] and after["state_rev"] == before["state_rev"]
    assert reconcile([inst.pk]).changed is False


def test_config_change_reloads_and_resets_state(instance_factory, quote, user):
    inst = instance_factory(mode="observe")
    reconcile()
    _tick(inst)
    assert _rt(inst)["state"]["n"] == 1
    load_id = _rt(inst)["load_id"]
    inst = instance_update_config(instance=inst, actor=user, config={"qty": 0.02})
    assert inst.config_revision == 2
    report = reconcile([inst.pk])
    assert report.reloaded == [str(inst.pk)]
    rt = _rt(inst)
    assert rt["state"] == {"n": 0, "inits": 1}  # init() ran again
    assert rt["load_id"] != load_id and rt["fingerprint"].endswith(":2")
    assert rt["config"]["qty"] == 0.02


def test_live_field_change_keeps_state(instance_factory, quote, user):
    inst = instance_factory(mode="observe")
    reconcile()
    _tick(inst)
    runtime.r().zadd(runtime.DUE_KEY, {str(inst.pk): _rt(inst)["next_due_at"] + 1})
    inst = instance_update_config(instance=inst, actor=user, config={"note": "hello"})
    assert inst.config_revision == 1  # a live field does not bump the revision
    report = reconcile([inst.pk])
    assert report.updated_live == [str(inst.pk)]
    rt = _rt(inst)
    assert rt["state"]["n"] == 1 and rt["config"]["note"] == "hello"
    outcome = tick_run(inst.pk, rt["next_due_at"] + 1)
    assert outcome.status == "ok"
    assert outcome.state["n"] == 2  # continued, not re-initialised
    assert outcome.logs[0]["msg"].endswith("note hello")


def test_tick_applies_a_pending_change_itself(instance_factory, quote, user):
    """A tick that runs before the on-commit reconcile arrives still uses the new config."""
    inst = instance_factory(mode="observe")
    reconcile()
    _tick(inst)
    instance_update_config(instance=inst, actor=user, config={"qty": 0.05})
    rt = _rt(inst)
    outcome = tick_run(inst.pk, rt["next_due_at"] + 5)
    assert outcome.status == "ok" and outcome.state["n"] == 1  # reloaded: init() then one tick
    assert Order.objects.filter(instance=inst, qty=Decimal("0.05")).count() == 1


def test_redis_loss_restores_from_postgres_snapshot(instance_factory, quote):
    from stratbox.engine.snapshots import snapshot_flush

    inst = instance_factory(mode="observe")
    reconcile()
    _tick(inst)
    snapshot_flush()
    runtime.r().flushdb()
    report = reconcile()
    assert report.loaded == [str(inst.pk)]
    assert _rt(inst)["state"]["n"] == 1  # continued from the snapshot, no init()
    assert _rt(inst)["state"]["inits"] == 1


def test_load_failure_is_reported_not_scheduled(tenant, paper_account, market, quote):
    from tests.engine.conftest import make_instance, make_version

    # Validation trial-loads with the schema's defaults, so the failure depends on this instance's config.
    source = """
from sandbox.sdk import Strategy


class Bad(Strategy):
    CONFIG_SCHEMA = {"fail": {"type": "bool", "default": False}}

    def init(self):
        if self.config["fail"]:
            raise RuntimeError("cannot init")
        return {}

    def on_tick(self, tick):
        pass
"""
    inst = make_instance(make_version(tenant, source), paper_account, market, config={"fail": True})
    report = reconcile()
    assert report.failed == {str(inst.pk): "RUNTIME_ERROR"}
    rt = _rt(inst)
    assert not rt["loaded"] and rt["last_error"]["code"] == "RUNTIME_ERROR"
    assert runtime.r().zscore(runtime.DUE_KEY, str(inst.pk)) is None


def test_the_periodic_sweep_reads_in_line_instances_cheaply_and_still_applies_every_change(
    instance_factory, quote, user, tenant
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    steady = [instance_factory(mode="observe") for _ in range(4)]
    changed_mode = instance_factory(mode="observe")
    reconfigured = instance_factory(mode="observe")
    reconcile()
    for inst in (*steady, changed_mode, reconfigured):
        _tick(inst)
    runtime.r().zrem(runtime.DUE_KEY, str(steady[0].pk))  # lost from the schedule: put back

    with CaptureQueriesContext(connection) as queries:
        report = reconcile()
    assert report.unchanged == 6 and not report.changed
    assert len(queries) == 1  # one plain read of every instance: no model graphs, no per-row reads
    assert runtime.r().zscore(runtime.DUE_KEY, str(steady[0].pk)) is not None

    type(changed_mode).objects.filter(pk=changed_mode.pk).update(mode="active")
    instance_update_config(instance=reconfigured, actor=user, config={"qty": 0.05})
    report = reconcile()
    assert report.reloaded == [str(reconfigured.pk)] and report.unchanged == 5
    assert _rt(changed_mode)["mode"] == "active"
    assert _rt(reconfigured)["state"]["n"] == 0 and _rt(steady[1])["state"]["n"] == 1

    type(tenant).objects.filter(pk=tenant.pk).update(killed_at=timezone.now())
    reconcile()
    assert all(_rt(i)["paused"] and _rt(i)["pause_reason"] == "KILL_SWITCH" for i in steady)
