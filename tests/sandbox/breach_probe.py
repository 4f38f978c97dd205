"""Breach probe (test-only): run RAW Python inside a fully confined sandbox host.

    python tests/sandbox/breach_probe.py FILE.py [ARG ...]

prints one JSON object: the host's boot report (pid, uid, layers), what the raw code did
(``RESULT``, a dict it may fill, or the exception it raised with its errno), and whether the
next legitimate calls of the same tenant and of another tenant succeeded afterwards.

It assumes the language layer has already fallen: ``FILE.py`` is executed with plain ``exec`` —
no RestrictedPython, every builtin, ``ctypes`` and ``os`` at hand — inside a host started exactly
as production starts one: :class:`sandbox.SandboxClient` spawns it through ``_Host`` (same
argv, empty environment, uid lease, pipes), and :func:`sandbox.host.main` applies every
confinement layer. The only difference is the boot line: the probe's names this module's
``breach_hook.host_main``, which reads ``FILE.py`` before confinement and passes a hook to ``main``.

Why no request can reach it: raw execution exists only in a process whose *command line* is
the probe's boot line, chosen by the process that spawns it. The production boot line
(``sandbox.host.BOOT``) never passes a hook; a running host never re-reads its argv; and the
protocol has no command that spawns, execs or names a file. A forged request to a production host
therefore has nothing to trigger. Inside a probe host the raw code runs once, as the answer to
the client's first request.

The code sees ``REPLY_FD`` / ``REQUEST_FD`` (the host's pipes: it may forge replies), ``ARGS``
(the extra command-line arguments, e.g. victim pids) and ``RESULT``; setting ``REPLIED = True``
means it wrote its own reply frame.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def boot_line(raw_path: str, args: list[str]) -> str:
    """The production boot line (search path, keeper split) with the probe's host_main as its end."""
    from sandbox.host import boot_line as production_boot_line

    return production_boot_line(
        f"sys.path.insert(0,{str(HERE)!r});from breach_hook import host_main;"
        f"host_main(ns,{str(Path(raw_path).resolve())!r},{list(args)!r})"
    )


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox import SandboxClient, SandboxError  # noqa: E402
from sandbox.protocol import HEADER  # noqa: E402


class ProbeClient(SandboxClient):
    """A production client whose first host for each tenant in ``hostile`` boots the probe."""

    def __init__(self, hostile: dict[str, tuple[str, list[str]]], **kw: Any) -> None:
        super().__init__(**kw)
        self.hostile = dict(hostile)
        self.sent = threading.Event()  # set once the probe's go has reached the host

    def _boot_for(self, tenant_id: str) -> str | None:
        if tenant_id in self.hostile:
            raw_path, args = self.hostile.pop(tenant_id)
            return boot_line(raw_path, args)
        return None

    def breach(self, tenant_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Spawn the tenant's probe host, run its raw code; returns its outcome or the client's error."""
        import pickle
        import time

        with self._tenant(tenant_id):
            host = self._host_for(tenant_id)
            payload = pickle.dumps({"cmd": "ping", "budget": timeout}, protocol=5)
            deadline = time.monotonic() + timeout
            try:
                host._write(HEADER.pack(len(payload)) + payload, deadline)  # noqa: SLF001
                self.sent.set()
                reply = host._read_reply(deadline, self.limits.reply_cap("ping"))  # noqa: SLF001
            except TimeoutError:
                host.kill()
                return {"client_error": "TIMEOUT"}
            except SandboxError as exc:
                host.kill()
                return {"client_error": exc.code.value, "message": exc.message}
            except Exception as exc:  # noqa: BLE001 - _HostGone and friends: the host died
                return {
                    "client_error": "HOST_GONE",
                    "message": type(exc).__name__,
                    "exit": host.proc.wait(timeout=2),
                }
            finally:
                self._discard(tenant_id)
        result = reply.get("result")
        if (
            reply.get("ok") is not True
            or not isinstance(result, dict)
            or not isinstance(result.get("breach"), dict)
        ):
            return {"client_error": "FORGED", "reply": reply}
        breach: dict[str, Any] = result["breach"]
        return breach


LEGIT = """
from sandbox.sdk import Strategy

class Legit(Strategy):
    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
"""
TICK = {"market": "BTC-USD", "ts": 1.0, "price": 100.0, "bid": 99.5, "ask": 100.5, "volume": 1.0}
SNAPSHOT = {
    "mode": "observe",
    "now": 1.0,
    "quote": {"market": "BTC-USD", "price": 100.0, "bid": 99.5, "ask": 100.5, "ts": 1.0},
    "orders": [],
    "position": None,
    "positions": [],
    "balance": "1000",
    "order_id_prefix": "probe",
}


def legit_tick(client: SandboxClient, tenant: str) -> int:
    """Load (first time) and tick a legitimate instance; returns its counter after the tick."""
    if not client.is_loaded(tenant, "legit", "legit"):
        client.load(tenant, "legit", source=LEGIT, config={}, fingerprint="legit")
    return int(client.tick(tenant, "legit", dict(TICK), dict(SNAPSHOT))["state"]["n"])


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: python tests/sandbox/breach_probe.py FILE.py [ARG ...]", file=sys.stderr)
        return 2
    tenant = os.environ.get("BREACH_TENANT", "probe")
    with ProbeClient({tenant: (argv[0], argv[1:])}, max_hosts=4, prespawn=False) as client:
        report: dict[str, Any] = {}
        try:
            info = client.host_info(tenant)
        except SandboxError as exc:
            print(json.dumps({"boot_error": exc.code.value, "message": exc.message}))
            return 1
        report["host"] = {
            "pid": info.get("pid"),
            "ns_pid": info.get("ns_pid"),
            "uid": info.get("uid"),
            "layers": info.get("layers"),
        }
        report.update(client.breach(tenant))
        after: dict[str, Any] = {}
        for who in (tenant, "probe-other-tenant"):
            try:
                after[who] = legit_tick(client, who)
            except SandboxError as exc:
                after[who] = f"{exc.code.value}: {exc.message}"
        report["after"] = {"same_tenant": after[tenant], "other_tenant": after["probe-other-tenant"]}
    print(json.dumps(report, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
