"""The schedule's grid: phases on multiples of the dispatch interval, a dispatcher stepping on the
same wall-clock grid, and the ticks of one grid point split into even batches."""

from __future__ import annotations

import math
import os
import signal
import time
import uuid

from stratbox.engine import runtime
from stratbox.engine.dispatcher import dispatch_once
from stratbox.engine.reconciler import reconcile
from stratbox.loops import ALIGN_DELAY, run_every


def _on_grid(value: float, step: float) -> bool:
    k = round(value / step)
    return math.isclose(value, k * step, abs_tol=1e-6)


def test_phases_are_multiples_of_the_dispatch_interval_and_spread_over_the_second(settings):
    ids = [str(uuid.UUID(int=n * 0x9E3779B97F4A7C15_F39CC0605CEDC834 % 2**128)) for n in range(1, 2001)]
    for step in (0.05, 0.02, 0.3):
        settings.ENGINE_DISPATCH_INTERVAL = step
        phases = [runtime.phase(iid) for iid in ids]
        assert all(0 <= p < 1 and _on_grid(p, step) for p in phases)
        # every grid point of the second is used, and evenly (2,000 ids: ~2000 / points each)
        points = {round(p / step) for p in phases}
        assert points == set(range(math.ceil(1 / step)))
        per_point = [sum(1 for p in phases if round(p / step) == k) for k in points]
        assert max(per_point) < 2 * len(ids) / len(points)
    settings.ENGINE_DISPATCH_INTERVAL = 0.0  # no grid: the phase keeps its millisecond resolution
    assert {round(runtime.phase(iid) * 1000) % 50 for iid in ids} != {0}


def test_an_instance_falls_due_on_the_grid(instance_factory, quote, settings):
    settings.ENGINE_DISPATCH_INTERVAL = 0.05
    inst = instance_factory(mode="observe")
    reconcile()
    due = runtime.rt_get(str(inst.pk))["next_due_at"]
    assert _on_grid(due - int(due), 0.05)


def test_the_ticks_of_one_grid_point_go_out_in_even_batches(instance_factory, quote, settings):
    settings.ENGINE_TICK_BATCH = 3
    instances = [instance_factory(mode="observe") for _ in range(7)]
    reconcile()
    due = float(int(time.time()) + 1)
    for inst in instances:  # all at the same grid point
        runtime.schedule(str(inst.pk), due)
    sent: list[tuple[list[list[object]], float | None]] = []
    assert dispatch_once(now=due + 0.001, enqueue=lambda batch, eta: sent.append((batch, eta))) == 7
    assert sorted(len(batch) for batch, _ in sent) == [2, 2, 3]  # not 3, 3, 1
    assert all(eta is None for _, eta in sent)  # due now: published at once
    assert sorted(str(i) for batch, _ in sent for i, _ in batch) == sorted(str(i.pk) for i in instances)


def test_aligned_steps_start_just_after_the_grid_points_of_the_wall_clock(db):
    interval = 0.2
    starts: list[float] = []

    def step() -> None:
        starts.append(time.time())
        if len(starts) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # run_every's handler: finish this step and return

    assert run_every(interval, step, align=True) == 4
    later = [t - ALIGN_DELAY for t in starts[1:]]
    assert all(t >= 0 for t in later)
    # each later step starts inside its own grid interval, near its start, never two in one interval
    assert all((t % interval) < 0.9 * interval for t in later)
    assert len({math.floor(t / interval) for t in later}) == 3
    assert all(b - a > 0.5 * interval for a, b in zip(starts[1:], starts[2:], strict=False))


def test_quiet_runs_are_sampled_at_offsets_spread_over_the_instances(settings):
    """1 in N quiet runs is stored, each instance at its own offset: at any second about 1/N of the
    instances store one, never all of them at once."""
    from stratbox.engine.models import RunTrigger
    from stratbox.engine.runs import keep_run

    settings.ENGINE_RUN_SAMPLE_EVERY = 60
    ids = [str(uuid.UUID(int=n * 0x9E3779B97F4A7C15_F39CC0605CEDC834 % 2**128)) for n in range(1, 3001)]
    slot = 1_800_000_000  # a whole minute

    def kept(iid: str, at: int) -> bool:
        return keep_run(iid, RunTrigger.SCHEDULED, [], None, at, 1, False)

    for at in (slot, slot + 1, slot + 37):
        assert 0 < sum(kept(iid, at) for iid in ids) < 3 * len(ids) / 60
    for iid in ids[:50]:  # each instance: exactly one quiet run a minute
        assert sum(kept(iid, at) for at in range(slot, slot + 60)) == 1
    # actions, errors and the first run after a load are always stored
    assert keep_run(ids[0], RunTrigger.SCHEDULED, [{"kind": "order"}], None, slot, 1, False)
    assert keep_run(ids[0], RunTrigger.SCHEDULED, [], {"code": "RUNTIME_ERROR"}, slot, 1, False)
    assert keep_run(ids[0], RunTrigger.SCHEDULED, [], None, slot, 1, True)


def test_a_phase_off_the_grid_moves_onto_it_at_the_next_slot(instance_factory, quote, settings):
    """An instance scheduled before the grid (or under another interval) is realigned by the
    dispatcher; one on the grid keeps its due times exactly."""
    settings.ENGINE_DISPATCH_INTERVAL = 0.05
    off, on = instance_factory(mode="observe"), instance_factory(mode="observe")
    reconcile()
    second = int(time.time()) + 1
    runtime.schedule(str(off.pk), second + 0.347)  # a millisecond phase of the old schedule
    on_due = runtime.rt_get(str(on.pk))["next_due_at"]
    taken = dict(runtime.due_take(max(second + 0.35, on_due) + 0.001))
    assert taken[str(off.pk)] == second + 0.347  # this slot still runs when it was due
    assert math.isclose(runtime.rt_get(str(off.pk))["next_due_at"], second + 1.30, abs_tol=1e-6)
    assert runtime.rt_get(str(on.pk))["next_due_at"] == taken[str(on.pk)] + 1  # untouched
