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
