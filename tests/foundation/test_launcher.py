"""`make run` on a machine where nothing is configured: embedded PostgreSQL and Redis, the demo
instance ticking on the simulated feed and placing paper orders, and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import psycopg

from tests.loopback import free_port

BASE_DIR = Path(__file__).resolve().parents[2]


def _wait(what: str, predicate, timeout: float, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception:  # not up yet
            value = None
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"{what} within {timeout} s; the launcher's output:\n{log.read_text()[-4000:]}")


def test_make_run_with_nothing_configured_runs_the_demo_on_embedded_stores() -> None:
    var = Path(tempfile.mkdtemp(prefix="sbx-run-"))  # short: unix socket paths are limited
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        STRATBOX_VAR_DIR=str(var),
        STRATBOX_PORT=str(port),
        STRATBOX_MAIL_PORT=str(free_port()),  # the demo's mail catcher
        PYTHONUNBUFFERED="1",
        STRATBOX_HEALTH_TOKEN="launch-test",
    )
    log = var / "run.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "stratbox.launcher"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def healthy() -> bool:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/healthz", headers={"Authorization": "Bearer launch-test"}
            )
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - loopback
                body = json.loads(resp.read())
            # "ok" needs a heartbeat from a worker on the default queue and one on the long queue.
            return body["status"] == "ok" and body["database"]["detail"] == "postgresql"

        # The banner with the credentials comes only once the web server answers: when it is on
        # screen, the address it names works at once.
        _wait("the banner was printed", lambda: "Stratbox is running" in log.read_text(), 240, log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as resp:
            assert resp.status == 200
        _wait("the platform answered /healthz", healthy, 240, log)
        # The banner names the socket the embedded Redis really listens on (under STRATBOX_VAR_DIR).
        assert f"embedded redis-server on {var / 'redis.sock'}" in log.read_text()
        # CPU priorities on one box: the web server below the tick workers (STRATBOX_WEB_NICE, 10),
        # the long-work pool under SCHED_IDLE at nice 19, the tick pool as launched.
        own = os.getpriority(os.PRIO_PROCESS, 0)
        tree = psutil.Process(launcher.pid).children(recursive=True)

        def procs(word: str) -> list[psutil.Process]:
            return [p for p in tree if p.name().startswith("python") and word in " ".join(p.cmdline())]

        assert {p.nice() for p in procs("uvicorn")} == {min(own + 10, 19)}
        assert {(os.sched_getscheduler(p.pid), p.nice()) for p in procs("worker@")} == {(os.SCHED_OTHER, own)}
        assert {(os.sched_getscheduler(p.pid), p.nice()) for p in procs("long@")} == {(os.SCHED_IDLE, 19)}

        def demo_traded() -> tuple[int, int] | None:
            with psycopg.connect(host=str(var / "postgres"), user="postgres", dbname="stratbox") as conn:
                runs = conn.execute("SELECT count(*) FROM engine_run WHERE status = 'ok'").fetchone()[0]
                orders = conn.execute(
                    "SELECT count(*) FROM trading_order WHERE NOT is_shadow AND status = 'filled'"
                ).fetchone()[0]
            return (runs, orders) if runs and orders else None

        runs, orders = _wait("the demo instance ticked and filled a paper order", demo_traded, 180, log)
        assert runs >= 1 and orders >= 1
    finally:
        launcher.send_signal(signal.SIGTERM)  # what a service manager sends; Ctrl-C works the same
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
    # A requested stop is a clean exit (make prints no "Error 143").
    assert launcher.returncode == 0, log.read_text()[-4000:]
    output = log.read_text()
    assert output.count("Stratbox is running") == 1
    # Worker and beat log at WARNING by default: no per-task INFO lines bury the banner.
    assert "INFO/" not in output and "] INFO" not in output and " succeeded in " not in output, output[-4000:]
    # Everything stopped with it, the embedded stores included.
    _wait(
        "the embedded PostgreSQL stopped", lambda: not (var / "postgres" / "postmaster.pid").exists(), 30, log
    )
    assert not (var / "redis.sock").exists() or not _redis_answers(var / "redis.sock")


def _redis_answers(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
