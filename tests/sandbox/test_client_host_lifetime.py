"""A host lives exactly as long as its client needs it: not shorter (a spawning thread that ends),
not longer (a client that dies), and its uid lease goes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from breach_probe import legit_tick
from breach_support import HERE
from test_breach_layers_strict import _held_elsewhere

from sandbox import SandboxClient


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def _wait_until(predicate, seconds: float = 20.0) -> bool:  # noqa: ANN001 - a test helper
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_host_spawned_by_a_thread_that_ended_keeps_serving() -> None:
    with SandboxClient(max_hosts=2, prespawn=True) as client:
        worker = threading.Thread(target=legit_tick, args=(client, "t"))
        worker.start()
        worker.join()  # the thread that spawned the tenant's host and the spare has ended
        spare = client._spare  # noqa: SLF001
        assert spare is not None
        spare.wait_ready()
        assert legit_tick(client, "t") == 2  # the host it spawned
        assert legit_tick(client, "other") == 1  # the spare it spawned
        assert client._pool["other"] is spare  # noqa: SLF001


def test_hosts_and_leases_go_when_their_client_dies() -> None:
    script = (
        "import sys, time; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "from sandbox import SandboxClient\n"
        "from breach_probe import legit_tick\n"
        "c = SandboxClient(max_hosts=2, prespawn=False)\n"
        "legit_tick(c, 't')\n"
        "h = c._pool['t']\n"
        "print(h.proc.pid, h.host_pid, c.host_info('t')['uid'], flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(HERE.parents[1]), str(HERE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        keeper, host, uid = (int(x) for x in proc.stdout.readline().split())
        assert not _gone(keeper) and not _gone(host) and _held_elsewhere(uid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the worker dies without cleaning up
        proc.wait()
    assert _wait_until(lambda: _gone(host) and _gone(keeper)), "the host outlived its client"
    assert _wait_until(lambda: not _held_elsewhere(uid)), "the uid lease outlived the host"
