"""Backtests on their own queue and pool, with per-tenant quotas; instance quotas per plan.

- the plan's number of unfinished backtests: one more is a 429 `BACKTEST_QUOTA_EXCEEDED` in the
  standard error body; queued runs show their position on the shared pool;
- a real worker on the default queue alone never runs a backtest; one on the long queue does;
- a tenant runs at most its plan's number of backtests at once, while another tenant's run passes;
- a cancel stops a running chunk within about a second (its host is killed), not at the chunk's end;
- instances: the plan's count is a 409 `INSTANCE_QUOTA_EXCEEDED`, its shortest frequency a 400.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import pytest

from tests.conftest import WorkerProcess
from tests.engine.conftest import COUNTER, make_version, wait_for
from tests.fairness.conftest import CSV

URL = "/api/v1/backtests/"

# Each bar burns CPU in the sandbox: a 300-bar chunk takes far longer than the cancel window.
HEAVY = """
from sandbox.sdk import Strategy


class Heavy(Strategy):
    CONFIG_SCHEMA = {"spin": {"type": "int", "default": 200000, "min": 1, "max": 10000000}}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        x = 0
        for i in range(self.config["spin"]):
            x += i
        self.state["n"] += 1
"""


def _plans(**standard: int) -> dict[str, Any]:
    base = {"max_instances": 50, "min_frequency_seconds": 1, "backtests_running": 1, "backtests_queued": 5}
    return {"standard": {**base, **standard}}


def _create(client: Any, version: Any, **extra: Any) -> Any:
    upload = io.BytesIO(CSV.encode())
    upload.name = "bars.csv"
    return client.post(URL, {"version": str(version.pk), "csv": upload, **extra}, format="multipart")


@pytest.mark.django_db
def test_one_backtest_over_the_plan_is_a_429_and_queued_runs_show_their_position(
    api_client: Any, other_api_client: Any, tenant: Any, other_tenant: Any, settings: Any, celery_queue: str
) -> None:
    settings.STRATBOX_PLANS = _plans(backtests_queued=2)
    version = make_version(tenant, COUNTER)
    other_version = make_version(other_tenant, COUNTER)
    first = _create(api_client, version)
    second = _create(api_client, version)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["progress"]["queue_position"] == 1
    assert second.json()["progress"]["queue_position"] == 2

    third = _create(api_client, version)
    assert third.status_code == 429
    assert third.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "BACKTEST_QUOTA_EXCEEDED",
                "detail": "2 backtests of this tenant are queued or running; the standard plan allows 2 at "
                "once. Wait for one to finish or cancel one.",
                "attr": None,
            }
        ],
    }
    # Another tenant's quota is its own; its run queues behind the two already waiting.
    other = _create(other_api_client, other_version)
    assert other.status_code == 201
    assert other.json()["progress"]["queue_position"] == 3
    # A cancel frees a place at once, and the positions move up.
    assert api_client.post(f"{URL}{first.json()['id']}/cancel/").status_code == 202
    assert api_client.get(f"{URL}{second.json()['id']}/").json()["progress"]["queue_position"] == 1
    assert _create(api_client, version).status_code == 201


@pytest.mark.django_db
def test_backtest_creation_is_throttled_like_the_api(api_client: Any, tenant: Any, settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "backtests": "1/min"},
    }
    settings.STRATBOX_PLANS = _plans(backtests_queued=10)
    version = make_version(tenant, COUNTER)
    assert _create(api_client, version).status_code == 201
    response = _create(api_client, version)
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "throttled"
    assert api_client.get(URL).status_code == 200  # reading is never counted


def test_backtests_run_only_on_the_long_queue(
    transactional_db: None, tenant: Any, user: Any, celery_queue: str
) -> None:
    from stratbox.backtests.models import Backtest
    from tests.factories import client_for

    client = client_for(user, tenant)
    version = make_version(tenant, COUNTER)
    ticks = WorkerProcess(name=f"t{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=celery_queue).start()
    try:
        bt_id = _create(client, version).json()["id"]
        time.sleep(3)  # a worker on the tick queue would have finished this 300-bar run by now
        assert Backtest.objects.get(pk=bt_id).status == "queued"
    finally:
        ticks.stop()
    long = WorkerProcess(
        name=f"l{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=f"{celery_queue}.long"
    ).start()
    try:
        wait_for(lambda: Backtest.objects.get(pk=bt_id).status == "succeeded", timeout=60)
    finally:
        long.stop()


def test_a_tenant_runs_its_plans_number_of_backtests_at_once_while_another_tenant_passes(
    transactional_db: None, tenant: Any, user: Any, other_tenant: Any, other_user: Any, celery_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from stratbox.backtests.models import Backtest
    from tests.factories import client_for

    monkeypatch.setenv("STRATBOX_PLANS", json.dumps(_plans(backtests_running=1)))
    heavy = make_version(tenant, HEAVY)
    light = make_version(other_tenant, COUNTER)
    client, other_client = client_for(user, tenant), client_for(other_user, other_tenant)
    a1 = _create(client, heavy, config=json.dumps({"spin": 100000})).json()["id"]
    a2 = _create(client, heavy, config=json.dumps({"spin": 100000})).json()["id"]
    b1 = _create(other_client, light).json()["id"]
    pool = WorkerProcess(
        name=f"l{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=f"{celery_queue}.long", concurrency=2
    ).start()
    try:
        both_running = False

        def b_done() -> bool:
            nonlocal both_running
            statuses = dict(Backtest.objects.filter(pk__in=[a1, a2]).values_list("pk", "status"))
            both_running = both_running or list(statuses.values()).count("running") == 2
            return Backtest.objects.get(pk=b1).status == "succeeded"

        wait_for(b_done, timeout=90, interval=0.05)
        # B's run finished while A still had a run waiting for A's only slot.
        statuses = sorted(Backtest.objects.filter(pk__in=[a1, a2]).values_list("status", flat=True))
        assert "queued" in statuses, statuses
        assert not both_running
    finally:
        for bt in (a1, a2):
            client.post(f"{URL}{bt}/cancel/")
        pool.stop()


def test_cancel_stops_a_running_chunk_within_about_a_second(
    transactional_db: None, tenant: Any, user: Any, celery_queue: str
) -> None:
    from stratbox.backtests.models import Backtest
    from tests.factories import client_for

    client = client_for(user, tenant)
    heavy = make_version(tenant, HEAVY)
    # One chunk of 300 bars at ~10^6 loop steps each: minutes of CPU if left to finish.
    bt_id = _create(client, heavy, config=json.dumps({"spin": 1000000}), chunk_bars=10000).json()["id"]
    pool = WorkerProcess(
        name=f"l{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=f"{celery_queue}.long"
    ).start()
    try:
        wait_for(lambda: Backtest.objects.get(pk=bt_id).status == "running", timeout=60)
        time.sleep(1.0)  # inside the chunk
        asked = time.monotonic()
        assert client.post(f"{URL}{bt_id}/cancel/").status_code == 202
        wait_for(lambda: Backtest.objects.get(pk=bt_id).status == "cancelled", timeout=30, interval=0.02)
        took = time.monotonic() - asked
        bt = Backtest.objects.get(pk=bt_id)
        assert bt.bars_done == 0  # stopped inside its first (only) chunk, not after it
        assert bt.error_code == ""
        # "Within a second" plus this loaded machine's scheduling slack; the chunk itself takes minutes.
        assert took < 3.0, took
    finally:
        pool.stop()


@pytest.mark.django_db
def test_instance_quota_is_a_409_and_the_plans_shortest_frequency_a_400(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, settings: Any
) -> None:
    settings.STRATBOX_PLANS = _plans(max_instances=1, min_frequency_seconds=5)
    version = make_version(tenant, COUNTER, key="counter")
    body = {
        "name": "one",
        "strategy": "counter",
        "account": str(paper_account.pk),
        "market": market.pk,
        "frequency_seconds": 2,
    }
    too_fast = api_client.post("/api/v1/instances/", body, format="json")
    assert too_fast.status_code == 400
    assert too_fast.json()["errors"] == [
        {
            "code": "invalid",
            "detail": "must be at least 5 (the shortest period of the tenant's plan).",
            "attr": "frequency_seconds",
        }
    ]
    assert (
        api_client.post("/api/v1/instances/", {**body, "frequency_seconds": 5}, format="json").status_code
        == 201
    )
    over = api_client.post(
        "/api/v1/instances/", {**body, "name": "two", "frequency_seconds": 5}, format="json"
    )
    assert over.status_code == 409
    assert over.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "INSTANCE_QUOTA_EXCEEDED",
                "detail": "The tenant's plan (standard) allows 1 instances; delete one first.",
                "attr": None,
            }
        ],
    }
    assert version.definition.instances.count() == 1


def test_long_work_runs_sched_idle_at_the_lowest_cpu_priority_and_ticks_keep_theirs(
    transactional_db: None, tenant: Any, user: Any, celery_queue: str
) -> None:
    """A worker consuming only the long queue lowers its priority before its pool starts: every
    thread of it, of its pool processes and of the sandbox host running a backtest runs under
    SCHED_IDLE at nice 19, so a busy core runs ticks first. A worker on the tick queue keeps the
    policy and priority it was started with."""
    import os

    import psutil

    from stratbox.backtests.models import Backtest
    from tests.factories import client_for

    client = client_for(user, tenant)
    heavy = make_version(tenant, HEAVY)
    own = psutil.Process().nice()
    long = WorkerProcess(
        name=f"l{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=f"{celery_queue}.long"
    ).start()
    ticks = WorkerProcess(name=f"t{uuid.uuid4().hex[:6]}", queue=celery_queue, queues=celery_queue).start()
    bt = _create(client, heavy, config=json.dumps({"spin": 100000})).json()["id"]
    try:
        wait_for(lambda: Backtest.objects.get(pk=bt).status == "running", timeout=60)

        def tree(proc: WorkerProcess) -> list[psutil.Process]:
            assert proc.proc is not None
            root = psutil.Process(proc.proc.pid)
            return [root, *root.children(recursive=True)]

        def hosts() -> list[psutil.Process]:
            return [p for p in tree(long) if "sandbox" in " ".join(p.cmdline())]

        def policies(procs: list[psutil.Process]) -> set[tuple[int, int]]:
            """(scheduling policy, nice) of every thread of these processes."""
            return {
                (os.sched_getscheduler(t.id), os.getpriority(os.PRIO_PROCESS, t.id))
                for p in procs
                for t in p.threads()
            }

        wait_for(hosts, timeout=30)
        assert len(tree(long)) >= 3  # the worker, its pool process, the backtest's host (and keeper)
        assert policies(tree(long)) == {(os.SCHED_IDLE, 19)}
        assert policies(hosts()) == {(os.SCHED_IDLE, 19)}
        assert policies(tree(ticks)) == {(os.SCHED_OTHER, own)}
    finally:
        client.post(f"{URL}{bt}/cancel/")
        ticks.stop()
        long.stop()


def test_cpu_priority_falls_back_to_nice_without_sched_idle() -> None:
    """`STRATBOX_LONG_WORKER_IDLE=0` (or a kernel that refuses SCHED_IDLE): nice alone, in every
    thread, including one started before; SCHED_IDLE otherwise. Run in forked children."""
    import multiprocessing
    import os
    import threading

    from stratbox.workers import lower_cpu_priority

    def child(idle: bool, out: Any) -> None:
        seen: list[tuple[int, int]] = []
        started = threading.Event()
        done = threading.Event()

        def other() -> None:
            started.set()
            done.wait()
            seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))

        t = threading.Thread(target=other)
        t.start()
        started.wait()
        applied = lower_cpu_priority(19, idle)
        done.set()
        t.join()
        seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)))
        out.put((applied, seen))

    ctx = multiprocessing.get_context("fork")
    for idle, policy, text in (
        (False, os.SCHED_OTHER, "nice 19"),
        (True, os.SCHED_IDLE, "SCHED_IDLE, nice 19"),
    ):
        out = ctx.Queue()
        proc = ctx.Process(target=child, args=(idle, out))
        proc.start()
        applied, seen = out.get(timeout=10)
        proc.join(timeout=10)
        assert applied == text
        assert seen == [(policy, 19), (policy, 19)]
