"""Helpers for the breach-probe suites: run raw code in a confined host, watch the victims.

The probe runs as its own process (like a second worker on the machine); the victims live in this
test process: another tenant's host, a host of the probe's own tenant (a sibling host, as another
worker would have), and this process itself.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from breach_probe import legit_tick

from sandbox import SandboxClient

HERE = Path(__file__).resolve().parent
PROBE = HERE / "breach_probe.py"

ARCH = platform.machine()
# System call numbers the payloads call directly (x86_64, aarch64).
NR = {
    "x86_64": {
        "tgkill": 234,
        "rt_sigqueueinfo": 129,
        "rt_tgsigqueueinfo": 297,
        "pidfd_open": 434,
        "pidfd_send_signal": 424,
        "process_vm_readv": 310,
        "prlimit64": 302,
        "newfstatat": 262,
        "mknodat": 259,
        "symlinkat": 266,
        "mkdirat": 258,
        "renameat2": 316,
        "fchmodat": 268,
        "readlinkat": 267,
        "openat": 257,
        "unlinkat": 263,
        "socket": 41,
        "socketpair": 53,
        "execveat": 322,
        "clone": 56,
        "clone3": 435,
        "unshare": 272,
        "setns": 308,
        "mount": 165,
        "bpf": 321,
        "perf_event_open": 298,
        "io_uring_setup": 425,
        "userfaultfd": 323,
        "keyctl": 250,
        "ptrace": 101,
        "setuid": 105,
        "chroot": 161,
        "personality": 135,
        "landlock_create_ruleset": 444,
        "seccomp": 317,
        "ioctl": 16,
        "getdents64": 217,
        "fchown": 93,
        "memfd_create": 319,
        "getcwd": 79,
    },
    "aarch64": {
        "tgkill": 131,
        "rt_sigqueueinfo": 138,
        "rt_tgsigqueueinfo": 240,
        "pidfd_open": 434,
        "pidfd_send_signal": 424,
        "process_vm_readv": 270,
        "prlimit64": 261,
        "newfstatat": 79,
        "mknodat": 33,
        "symlinkat": 36,
        "mkdirat": 34,
        "renameat2": 276,
        "fchmodat": 53,
        "readlinkat": 78,
        "openat": 56,
        "unlinkat": 35,
        "socket": 198,
        "socketpair": 199,
        "execveat": 281,
        "clone": 220,
        "clone3": 435,
        "unshare": 97,
        "setns": 268,
        "mount": 40,
        "bpf": 280,
        "perf_event_open": 241,
        "io_uring_setup": 425,
        "userfaultfd": 282,
        "keyctl": 219,
        "ptrace": 117,
        "setuid": 146,
        "chroot": 51,
        "personality": 92,
        "landlock_create_ruleset": 444,
        "seccomp": 277,
        "ioctl": 29,
        "getdents64": 61,
        "fchown": 55,
        "memfd_create": 279,
        "getcwd": 17,
    },
}[ARCH]

# Every payload starts with this: raw system calls through ctypes (already loaded in every host).
PRELUDE = f'''
import ctypes, errno, os
NR = {NR!r}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def sysc(name, *args):
    """A raw system call: its result, or the errno's name."""
    ctypes.set_errno(0)
    r = libc.syscall(NR[name], *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if r < 0 else r

def call(fn, *args):
    """A Python-level call: "ok" or the errno's name of the OSError it raised."""
    try:
        fn(*args)
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, exc.errno)

VICTIMS = [int(a) for a in ARGS]
'''


def run_probe(code: str, *args: object, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` (after PRELUDE) raw in a confined host; returns the probe's JSON report."""
    path = HERE / f".breach-{os.getpid()}.py"
    path.write_text(PRELUDE + textwrap.dedent(code))
    try:
        proc = subprocess.run(
            [sys.executable, str(PROBE), str(path), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **(env or {})},
            check=False,
        )
    finally:
        path.unlink()
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def process_view(pid: int) -> dict[str, Any]:
    """What a successful attack on ``pid`` would change: life, run state, tracer, pending signals, limits."""
    status = dict(line.split(":\t", 1) for line in _proc(pid, "status").splitlines() if ":\t" in line)
    return {
        "state": status["State"].split()[0],
        "tracer": status["TracerPid"].strip(),
        "pending": status["ShdPnd"].strip(),
        "own_pending": status["SigPnd"].strip(),
        "limits": _proc(pid, "limits"),
        "uid": status["Uid"].split()[0],
    }


class Victims:
    """Another tenant's host, the probe tenant's sibling host, and this test process."""

    def __init__(self) -> None:
        self.client = SandboxClient(max_hosts=4, prespawn=False)
        self.counts = {t: legit_tick(self.client, t) for t in ("victim-tenant", "probe")}
        self.pids = {t: int(self.client.host_info(t)["pid"]) for t in self.counts}
        self.pids["test-process"] = os.getpid()
        self.before = {name: process_view(pid) for name, pid in self.pids.items()}

    def args(self) -> list[int]:
        return list(self.pids.values())

    def assert_untouched(self) -> None:
        """Every victim alive, running, untraced, with no signal pending, limits unchanged; then works."""
        for name, pid in self.pids.items():
            view = process_view(pid)
            assert view["state"] in ("S", "R"), f"{name} is in state {view['state']}"
            assert view == {**self.before[name], "state": view["state"]}, (
                f"{name} changed: {view} vs {self.before[name]}"
            )
        for tenant in ("victim-tenant", "probe"):
            assert int(self.client.host_info(tenant)["pid"]) == self.pids[tenant], (
                f"{tenant}'s host was replaced"
            )
            self.counts[tenant] += 1
            assert legit_tick(self.client, tenant) == self.counts[tenant]

    def close(self) -> None:
        self.client.close()


def assert_probe_recovered(report: dict[str, Any]) -> None:
    """The probe's own next legitimate calls (same tenant, another tenant) succeeded."""
    assert report["after"] == {"same_tenant": 1, "other_tenant": 1}, report["after"]
