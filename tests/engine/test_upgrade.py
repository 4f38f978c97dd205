"""Upgrading a loaded instance: the engine reloads it with the new code; state reset by default,
carried into the new code's on_load with keep_state; runs and orders record the version they ran."""

from __future__ import annotations

from typing import Any

from stratbox.engine import runtime
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.instances.services import instance_upgrade
from stratbox.trading.models import Order
from tests.engine.conftest import make_version

V2 = """
from sandbox.sdk import Strategy


class CounterTwo(Strategy):
    CONFIG_SCHEMA = {
        "qty": {"type": "float", "default": 0.01, "min": 0.0001, "max": 100},
        "step": {"type": "int", "default": 10, "min": 1, "max": 1000},
    }

    def init(self):
        return {"n": 1000, "inits": 2}

    def on_load(self):
        self.state["loaded_at_n"] = self.state["n"]

    def on_tick(self, tick):
        self.state["n"] += self.config["step"]
        self.context.place_order("buy", self.config["qty"])
"""


def _tick(inst: Any, k: int = 0) -> Any:
    # Successive whole-second slots from the first due one (a slot runs once).
    rt = runtime.rt_get(str(inst.pk))
    base = _bases.setdefault(str(inst.pk), rt["next_due_at"])
    return tick_run(inst.pk, base + k)


_bases: dict[str, float] = {}


def _upgrade_and_tick(inst: Any, user: Any, *, keep_state: bool) -> dict[str, Any]:
    assert _tick(inst, 0).status == "ok"
    assert _tick(inst, 1).status == "ok"
    assert runtime.rt_get(str(inst.pk))["state"]["n"] == 2
    upgraded, report = instance_upgrade(instance=inst, actor=user, version_number=2, keep_state=keep_state)
    assert report.removed == {"every": 1, "note": "", "crash_at": 0}
    assert report.added == {"step": 10} and report.kept == {"qty": 0.01}
    reconcile([inst.pk])
    assert _tick(upgraded, 2).status == "ok"
    return runtime.rt_get(str(inst.pk))["state"]


def test_upgrade_resets_state_and_runs_record_v1_then_v2(
    instance_factory: Any, counter_version: Any, tenant: Any, quote: Any, user: Any, big_limits: None
) -> None:
    make_version(tenant, V2, key="counter")
    inst = instance_factory(mode="observe")
    reconcile([inst.pk])
    state = _upgrade_and_tick(inst, user, keep_state=False)
    assert state["inits"] == 2 and state["loaded_at_n"] == 1000 and state["n"] == 1010
    runs = list(
        Run.objects.filter(instance=inst).order_by("started_at").values_list("version__number", flat=True)
    )
    assert runs == [1, 1, 2]
    orders = list(
        Order.objects.filter(instance=inst).order_by("created_at").values_list("version__number", flat=True)
    )
    assert orders == [1, 1, 2]


def test_keep_state_hands_the_saved_state_to_the_new_codes_on_load(
    instance_factory: Any, counter_version: Any, tenant: Any, quote: Any, user: Any, big_limits: None
) -> None:
    make_version(tenant, V2, key="counter")
    inst = instance_factory(mode="observe")
    reconcile([inst.pk])
    state = _upgrade_and_tick(inst, user, keep_state=True)
    assert state["inits"] == 1  # init() of v2 never ran
    assert state["loaded_at_n"] == 2 and state["n"] == 12


def test_rollback_is_an_upgrade_to_the_previous_version(
    instance_factory: Any, counter_version: Any, tenant: Any, quote: Any, user: Any, big_limits: None
) -> None:
    make_version(tenant, V2, key="counter")
    inst = instance_factory(mode="observe")
    reconcile([inst.pk])
    upgraded, _ = instance_upgrade(instance=inst, actor=user, version_number=2)
    reconcile([inst.pk])
    back, report = instance_upgrade(instance=upgraded, actor=user, version_number=1)
    assert (report.from_version, report.to_version) == (2, 1)
    assert report.added == {"every": 1, "note": "", "crash_at": 0} and report.removed == {"step": 10}
    reconcile([inst.pk])
    assert _tick(back, 0).status == "ok"
    assert runtime.rt_get(str(inst.pk))["state"] == {"n": 1, "inits": 1}
    assert Run.objects.filter(instance=inst).latest("started_at").version_id == counter_version.pk
