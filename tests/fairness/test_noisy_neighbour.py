"""The noisy-neighbour suite, on real workers, a real dispatcher and the real ASGI server.

Tenant A at its worst, all at once: CPU-heavy backtests, a flood of health checks and version diffs,
and an instance that writes a NUL into its state. Tenant B just runs two 1-second instances and
calls its API. Meanwhile:

- every tick of B runs: consecutive ticks at most period + 1 s apart, none coalesced;
- B's PostgreSQL snapshots and run counters keep advancing (A's unstorable state fails only A);
- B's API answers every call (and promptly);
- A sees clear errors: its extra backtest waits its turn, diffs over the limit get 429, its
  instance shows its state's error.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from stratbox.engine import runtime
from tests.conftest import BASE_DIR, WorkerProcess, _test_database_url
from tests.engine.conftest import COUNTER, make_instance, make_version, set_quote, wait_for
from tests.fairness.conftest import CSV
from tests.fairness.test_backtest_quotas import HEAVY

pytestmark = pytest.mark.worker

LOAD_SECONDS = 20.0

POISON = """
from sandbox.sdk import Strategy


class Poison(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.state["note"] = "bad" + chr(0) + "state"
"""


def _http(
    url: str, *, token: str | None = None, data: bytes | None = None, ctype: str | None = None
) -> tuple[int, Any, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if ctype:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read()), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), time.monotonic() - started


def _backtest_body(version_id: str, spin: int) -> tuple[bytes, str]:
    boundary = "----noisy"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n{version_id}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="config"\r\n\r\n{json.dumps({"spin": spin})}\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="csv"; filename="b.csv"\r\n\r\n{CSV}\r\n',
        f"--{boundary}--\r\n",
    ]
    return "".join(parts).encode(), f"multipart/form-data; boundary={boundary}"


def _coalesced(inst: Any) -> int:
    return int(runtime.r().hget(runtime.rt_key(str(inst.pk)), "coalesced_ticks") or 0)


def _start_dispatcher(queue: str, settings: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_QUEUE": queue,
        "PYTHONUNBUFFERED": "1",
    }
    log = (BASE_DIR / "var" / f"test-dispatcher-{queue}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_dispatcher"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def test_a_noisy_tenant_never_stalls_a_quiet_one(
    asgi_server: Any, settings: Any, market: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratbox.celery import app
    from stratbox.engine.models import InstanceRuntime, InstanceStats, Run
    from stratbox.trading.models import Account
    from tenants.services import token_create
    from tests.factories import make_tenant, make_user

    queue = asgi_server.queue
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    monkeypatch.setenv("ENGINE_RUN_SAMPLE_EVERY", "1")  # every run of B is stored: each tick is checked
    monkeypatch.setenv("ENGINE_SNAPSHOT_SECONDS", "2")

    a_user, b_user = make_user("noisy@a.test"), make_user("quiet@b.test")
    a, b = make_tenant("Noisy A", owner=a_user), make_tenant("Quiet B", owner=b_user)
    a_token = token_create(
        tenant=a, user=a_user, name="a", scopes=["backtests:run", "strategies:write"]
    ).plaintext
    b_token = token_create(
        tenant=b, user=b_user, name="b", scopes=["backtests:run", "strategies:write"]
    ).plaintext
    a_account = Account.objects.create(tenant=a, name="Paper", kind="paper")
    b_account = Account.objects.create(tenant=b, name="Paper", kind="paper")
    counter = make_version(b, COUNTER, key="counter")
    quiet = [make_instance(counter, b_account, market, config={"every": 1000}, frequency=1) for _ in range(2)]
    poison = make_instance(make_version(a, POISON, key="poison"), a_account, market, frequency=1)
    heavy = make_version(a, HEAVY, key="heavy")
    make_version(a, HEAVY.replace("x += i", "x = x + i"), key="heavy")  # v2: something to diff
    diff_url = f"{asgi_server.url}/api/v1/strategies/{heavy.definition_id}/versions/2/diff/"

    set_quote(market)
    quoting = threading.Event()

    def feed() -> None:
        while not quoting.wait(0.25):
            set_quote(market)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    ticks = WorkerProcess(name=f"t{uuid.uuid4().hex[:6]}", queue=queue, queues=queue, concurrency=2).start()
    long = WorkerProcess(name=f"l{uuid.uuid4().hex[:6]}", queue=queue, queues=f"{queue}.long").start()
    dispatcher = _start_dispatcher(queue, settings)
    try:
        from stratbox.engine.reconciler import reconcile

        reconcile()
        wait_for(lambda: all(Run.objects.filter(instance=i).exists() for i in quiet), timeout=30)

        # --- A's load starts: two CPU-heavy backtests (its plan runs one at a time), floods ---
        body, ctype = _backtest_body(str(heavy.pk), 300000)
        started = [
            _http(f"{asgi_server.url}/api/v1/backtests/", token=a_token, data=body, ctype=ctype)
            for _ in range(2)
        ]
        assert [s for s, _, _ in started] == [201, 201], started
        load_from = time.time()
        coalesced_before = {i.pk: _coalesced(i) for i in quiet}
        b_latencies: list[float] = []
        b_statuses: list[int] = []
        diff_statuses: list[int] = []
        stop = threading.Event()

        def flood_health() -> None:
            while not stop.is_set():
                _http(f"{asgi_server.url}/healthz")

        def flood_diffs() -> None:
            while not stop.is_set():
                diff_statuses.append(_http(diff_url, token=a_token)[0])

        def quiet_api() -> None:
            while not stop.is_set():
                status, _, took = _http(f"{asgi_server.url}/api/v1/instances/", token=b_token)
                b_statuses.append(status)
                b_latencies.append(took)
                time.sleep(0.25)

        snapshots: list[int] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(flood_health) for _ in range(4)]
            futures += [pool.submit(flood_diffs) for _ in range(2)]
            futures.append(pool.submit(quiet_api))
            deadline = time.monotonic() + LOAD_SECONDS
            while time.monotonic() < deadline:
                time.sleep(2.5)
                row = InstanceRuntime.objects.filter(instance=quiet[0]).first()
                snapshots.append(row.tick_seq if row else 0)
            stop.set()
            for future in futures:
                future.result()
        load_to = time.time()
        coalesced_during = {i.pk: _coalesced(i) - coalesced_before[i.pk] for i in quiet}
        from stratbox.backtests.models import Backtest

        a_backtests = list(Backtest.objects.filter(tenant=a).values_list("status", flat=True))
    finally:
        quoting.set()
        app.conf.task_default_queue = previous_queue
        os.killpg(dispatcher.pid, signal.SIGTERM)
        dispatcher.wait(timeout=30)
        for proc in (ticks, long):
            proc.stop()

    # --- B: every tick ran on time, none coalesced ---
    from datetime import UTC, datetime

    window = (datetime.fromtimestamp(load_from, tz=UTC), datetime.fromtimestamp(load_to, tz=UTC))
    for inst in quiet:
        runs = list(Run.objects.filter(instance=inst, started_at__range=window).order_by("tick_seq"))
        assert len(runs) >= LOAD_SECONDS - 3, len(runs)
        seqs = [r.tick_seq for r in runs]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no slot skipped
        gaps = [(b.started_at - a.started_at).total_seconds() for a, b in zip(runs, runs[1:], strict=False)]
        assert max(gaps) <= inst.frequency_seconds + 1.0, gaps
        assert all(r.status == "ok" for r in runs), [
            (r.status, r.error_code) for r in runs if r.status != "ok"
        ]
        assert coalesced_during[inst.pk] == 0
        assert InstanceStats.objects.get(instance=inst).runs >= len(runs)

    # --- B's snapshots kept advancing while A's state could not be stored ---
    assert snapshots == sorted(snapshots) and snapshots[-1] > snapshots[0] >= 0, snapshots
    assert len(set(snapshots)) >= 4, snapshots

    # --- B's API answered every call, promptly ---
    assert b_statuses and set(b_statuses) == {200}, b_statuses
    assert max(b_latencies) < 5.0, sorted(b_latencies)[-5:]

    # --- A saw clear errors ---
    assert "queued" in a_backtests or a_backtests.count("running") <= 1, a_backtests
    assert 429 in diff_statuses, diff_statuses[:40]
    error = (runtime.rt_get(str(poison.pk)) or {}).get("last_error") or {}
    assert error.get("code"), error  # BAD_STATE (or the sandbox's own refusal of the NUL)
