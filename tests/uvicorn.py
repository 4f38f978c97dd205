"""The real ASGI app served by uvicorn in a subprocess on a free loopback port, for the fixtures that
need a live server (the browser tests, the MCP tests): against the test database and Redis, ready
once `ready_path` answers 200, stopped with its whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BASE_DIR
from tests.loopback import free_port


@dataclass
class Served:
    base: str  # http://127.0.0.1:<port>
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextmanager
def served(
    name: str, env: dict[str, str], *, ready_path: str, lifespan: str = "off", port: int | None = None
) -> Iterator[Served]:
    """`uvicorn stratbox.asgi:application` with `env` added to the environment."""
    port = port or free_port()
    log_path = BASE_DIR / "var" / f"test-{name}-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "uvicorn", "stratbox.asgi:application", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--lifespan", lifespan, "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Served(base=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the {name} server exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.base}{ready_path}", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the {name} server did not answer within 30 s:\n{server.log_tail()}")
        time.sleep(0.1)
    try:
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
