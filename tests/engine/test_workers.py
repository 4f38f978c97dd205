"""The engine with real Celery worker processes: on-commit reconcile, scheduling, no overlap, SIGKILL."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.dispatcher import dispatch_once
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.instances.services import instance_set_mode, instance_update_config
from stratbox.trading.models import Order
from tests.conftest import WorkerProcess
from tests.engine.conftest import wait_for

pytestmark = pytest.mark.worker


def _rt(inst: Any) -> dict:
    return runtime.rt_get(str(inst.pk)) or {}


def _start_worker(queue: str, concurrency: int = 1, **env: Any) -> WorkerProcess:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: str(v) for k, v in env.items()})
    try:
        return WorkerProcess(name=f"w{uuid.uuid4().hex[:6]}", queue=queue, concurrency=concurrency).start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dispatch_until(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatch_once()
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met while dispatching")


def test_committed_instance_changes_are_reconciled_by_a_worker(worker, instance_factory, quote, user):
    inst = instance_factory(mode="off")
    instance_set_mode(instance=inst, actor=user, mode="observe")  # committed -> on_commit -> engine.reconcile
    wait_for(lambda: _rt(inst).get("loaded"))
    first = _rt(inst)
    assert first["state"] == {"n": 0, "inits": 1}
    instance_update_config(instance=inst, actor=user, config={"qty": 0.02})
    wait_for(lambda: _rt(inst).get("fingerprint", "").endswith(":2"))
    assert _rt(inst)["load_id"] != first["load_id"]
    instance_set_mode(instance=inst, actor=user, mode="off")
    wait_for(lambda: not _rt(inst))
    assert runtime.r().zscore(runtime.DUE_KEY, str(inst.pk)) is None


def test_scheduling_frequency_and_no_overlap(celery_queue, transactional_db, instance_factory, quote):
    every_second = instance_factory(mode="observe", frequency=1)
    every_two = instance_factory(mode="observe", frequency=2)
    reconcile()
    proc = _start_worker(celery_queue, concurrency=2, ENGINE_RUN_SAMPLE_EVERY=1)
    try:
        start = time.time()
        _dispatch_until(lambda: time.time() - start > 5.5, timeout=10)
        # queued_slot is cleared when a tick *starts*: also wait for the last ticks to finish (lock free).
        wait_for(
            lambda: all(
                not _rt(i).get("queued_slot") and not runtime.r().exists(runtime.lock_key(str(i.pk)))
                for i in (every_second, every_two)
            )
        )
    finally:
        proc.stop()
    for inst, freq in ((every_second, 1), (every_two, 2)):
        seqs = list(Run.objects.filter(instance=inst).order_by("tick_seq").values_list("tick_seq", flat=True))
        assert len(seqs) >= 5 // freq, seqs
        gaps = [b - a for a, b in zip(seqs, seqs[1:], strict=False)]
        # Every tick on its own slot of the instance's period; a slot the loaded machine could not
        # start in time is skipped (never run late or twice) and counted as coalesced.
        assert all(gap >= freq and gap % freq == 0 for gap in gaps), seqs
        missed = sum(gap // freq - 1 for gap in gaps)
        assert missed <= min(int(_rt(inst).get("coalesced_ticks") or 0), 1), (seqs, _rt(inst))
        assert _rt(inst)["state"]["n"] == len(seqs) == Order.objects.filter(instance=inst).count()
        runs = list(Run.objects.filter(instance=inst).order_by("started_at"))
        assert all(a.finished_at <= b.started_at for a, b in zip(runs, runs[1:], strict=False))


def test_ticks_of_one_instance_never_overlap(celery_queue, transactional_db, instance_factory, quote):
    from stratbox.engine.tasks import run_ticks_task

    inst = instance_factory(mode="observe")
    reconcile()
    proc = _start_worker(
        celery_queue, concurrency=3, ENGINE_RUN_SAMPLE_EVERY=1, ENGINE_FAILPOINT_SLEEP_AFTER_ORDERS=0.4
    )
    try:
        base = int(time.time()) + 1
        for k in range(6):  # six slots at once on three processes: at most one may run at a time
            run_ticks_task.apply_async(args=[[[str(inst.pk), base + k]]])
        wait_for(lambda: all(runtime.r().exists(runtime.claim_key(str(inst.pk), base + k)) for k in range(6)))
        wait_for(
            lambda: not runtime.r().exists(runtime.lock_key(str(inst.pk))) and not _rt(inst).get("inflight")
        )
    finally:
        proc.stop()
    runs = list(Run.objects.filter(instance=inst).order_by("started_at"))
    assert runs and all(a.finished_at <= b.started_at for a, b in zip(runs, runs[1:], strict=False))
    rt = _rt(inst)
    assert rt["coalesced_ticks"] >= 1  # the busy instance's ticks were coalesced and counted
    assert rt["state"]["n"] == len(runs) == Order.objects.filter(instance=inst).count()


def test_sigkilled_worker_mid_tick_another_worker_continues(
    celery_queue, transactional_db, instance_factory, quote, settings
):
    """Worker A dies after placing the tick's order, before persisting state. Worker B replays that tick
    from the last persisted state: the order is not placed twice, no tick's order is lost."""
    import signal

    settings.ENGINE_QUEUED_STALE_SECONDS = 3.0  # the dispatcher notices A's lost tick quickly
    inst = instance_factory(mode="observe")
    reconcile()
    a = _start_worker(celery_queue, ENGINE_FAILPOINT_SLEEP_AFTER_ORDERS=30, ENGINE_LOCK_TTL=2)
    b = None
    try:
        order = _dispatch_until(lambda: Order.objects.filter(instance=inst).first())
        assert _rt(inst)["inflight"]["seq"] == int(order.client_order_id.rsplit("-", 2)[1])
        assert _rt(inst)["state"]["n"] == 0  # ordered, but the state was not persisted yet
        a.kill(signal.SIGKILL)
        killed_seq = _rt(inst)["inflight"]["seq"]
        b = _start_worker(celery_queue)
        _dispatch_until(lambda: _rt(inst)["state"]["n"] >= 3 and not _rt(inst).get("inflight"), timeout=30)
    finally:
        a.stop()
        if b:
            b.stop()
    orders = list(Order.objects.filter(instance=inst).values_list("client_order_id", flat=True))
    seqs = [int(cid.rsplit("-", 2)[1]) for cid in orders]
    assert seqs.count(killed_seq) == 1  # the in-flight order exists exactly once
    replay = Run.objects.get(instance=inst, tick_seq=killed_seq)
    assert replay.status == "ok" and replay.worker != ""  # recorded by B when it replayed the tick
    assert all(cid.endswith("-1") for cid in orders)  # one order per tick, none twice
    rt = _rt(inst)
    assert rt["state"]["n"] == len(orders)  # every order's tick is in the state, and only those
