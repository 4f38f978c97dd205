"""Strict confinement (a missing layer refuses the host, saying what is lacking), layers that hold on
their own when another is missing, and the per-host uid leases."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from breach_probe import legit_tick
from breach_support import HERE, NR, Victims, assert_probe_recovered

from sandbox import SandboxClient, uids

# Root without CAP_SYS_ADMIN: what a worker gets in a container with Docker's default capabilities.
NO_SYS_ADMIN = ["setpriv", "--bounding-set=-sys_admin"]


@pytest.fixture(scope="module")
def victims() -> Iterator[Victims]:
    v = Victims()
    yield v
    v.close()


def _probe_without_sys_admin(tmp_path: Path, code: str, strict: str, *args: object) -> str:
    raw = tmp_path / "raw.py"
    raw.write_text("import os, errno, signal\n" + code)
    env = {**os.environ, "STRATBOX_SANDBOX_STRICT": strict}
    proc = subprocess.run(
        [*NO_SYS_ADMIN, sys.executable, str(HERE / "breach_probe.py"), str(raw), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return proc.stdout


def test_a_missing_layer_refuses_the_host_and_says_what_is_lacking(tmp_path: Path) -> None:
    import json

    report = json.loads(_probe_without_sys_admin(tmp_path, "RESULT['ran'] = True", "1"))
    assert report["boot_error"] == "HOST_CRASHED"
    message = report["message"]
    assert message.startswith(
        "sandbox confinement layers are not active (STRATBOX_SANDBOX_STRICT=1): pidns: unshare("
    )
    assert "EPERM" in message and "CAP_SYS_ADMIN" in message and "emptyroot:" in message
    assert "outcome" not in report  # the raw code never ran


def test_signals_and_files_stay_refused_without_the_namespaces(tmp_path: Path, victims: Victims) -> None:
    """Degraded on purpose (no CAP_SYS_ADMIN, not strict): the uid, Landlock and seccomp layers still hold."""
    import json

    code = """
def call(fn, *args):
    try:
        fn(*args)
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]
for pid in map(int, ARGS):
    RESULT[f"kill {pid}"] = call(os.kill, pid, signal.SIGKILL)
    RESULT[f"stop {pid}"] = call(os.kill, pid, signal.SIGSTOP)
RESULT["mkdir"] = call(os.mkdir, "/tmp/sbx-pwned-degraded")
RESULT["open"] = call(open, "/etc/passwd", "rb")
RESULT["fork"] = call(os.fork)
"""
    report = json.loads(_probe_without_sys_admin(tmp_path, code, "0", *victims.args()))
    layers = report["host"]["layers"]
    assert layers["pidns"] is False and layers["emptyroot"] == ""
    assert layers["seccomp"] is True and layers["landlock"] >= 1 and layers["nobody"] is True
    assert report["outcome"] == "ok" and set(report["result"].values()) == {"EPERM"}, report
    victims.assert_untouched()
    assert_probe_recovered(report)
    assert not list(Path("/tmp").glob("sbx-pwned*"))


def _held_elsewhere(uid: int) -> bool:
    """Whether another process finds the uid's lease taken."""
    path = Path(uids.lease_dir()) / str(uid)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_uid_leases_are_exclusive_and_released_with_the_host() -> None:
    first, last = uids.uid_range()
    with SandboxClient(max_hosts=2, prespawn=False) as a, SandboxClient(max_hosts=2, prespawn=False) as b:
        taken = [int(c.host_info(t)["uid"]) for c in (a, b) for t in ("t1", "t2")]
        assert len(set(taken)) == 4 and all(first <= u <= last for u in taken)
        assert all(_held_elsewhere(u) for u in taken)  # the keepers hold them, not the clients
        a._discard("t1")  # noqa: SLF001 - the host is killed as on a timeout
        assert not _held_elsewhere(taken[0])
        assert all(_held_elsewhere(u) for u in taken[1:])
    assert not any(_held_elsewhere(u) for u in taken)


def test_a_lease_taken_by_another_process_is_skipped() -> None:
    uid, fd = uids.lease()
    try:
        script = (
            "import sys; sys.path.insert(0, sys.argv[1]); from sandbox import uids; print(uids.lease()[0])"
        )
        other = subprocess.run(
            [sys.executable, "-c", script, str(HERE.parents[1])],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "STRATBOX_SANDBOX_UIDS": f"{uid}-{uid + 1}"},
        )
        assert int(other.stdout) == uid + 1
    finally:
        os.close(fd)


def test_no_request_reaches_raw_execution_in_a_production_host() -> None:
    """Raw execution exists only behind the probe's own boot line; a production host's protocol has no route to it."""
    from sandbox import SandboxError
    from sandbox.host import BOOT, boot_line

    assert BOOT == boot_line("from sandbox.host import main;main(ns)")
    with SandboxClient(max_hosts=1, prespawn=False) as client:
        assert legit_tick(client, "t") == 1
        info = client.host_info("t")
        host = client._pool["t"]  # noqa: SLF001 - requests are forged below, below the public API
        for pid in (host.proc.pid, info["pid"]):  # the keeper and the host: both started from BOOT
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[5].decode() == BOOT
        for forged in (
            {"cmd": "exec", "source": "RESULT = 1"},
            {"cmd": "hook"},
            {"cmd": "breach"},
            {"cmd": "raw"},
        ):
            forged["instance_id"] = "legit"
            with pytest.raises(SandboxError) as err:
                host.request(forged, 1.0, "forged request")
            assert (err.value.code, err.value.message) == (
                "BAD_REQUEST",
                f"unknown command {forged['cmd']!r}",
            )
        raw = "import os\nos.system('touch /tmp/sbx-pwned-load')\n"
        with pytest.raises(SandboxError) as err:
            client.load("t", "raw", source=raw, config={})
        assert err.value.code == "FORBIDDEN"  # user code is always compiled by the policy, never run raw
        assert int(client.host_info("t")["pid"]) == info["pid"] and legit_tick(client, "t") == 2
    assert not list(Path("/tmp").glob("sbx-pwned*"))


# Runs the probe under a seccomp filter that refuses pivot_root, as Docker's default profile does.
NO_PIVOT_ROOT = """
import ctypes, os, platform, sys
sys.path.insert(0, sys.argv[1])
from sandbox import confine
arch = platform.machine()
prog = [(confine.BPF_LD_W_ABS, 0, 0, 0), (confine.BPF_JEQ_K, 0, 1, confine.PIVOT_ROOT[arch]),
        (confine.BPF_RET_K, 0, 0, confine.SECCOMP_RET_ERRNO | confine.EPERM),
        (confine.BPF_RET_K, 0, 0, confine.SECCOMP_RET_ALLOW)]
filters = (confine._SockFilter * len(prog))(*[confine._SockFilter(*i) for i in prog])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(confine.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
assert libc.prctl(confine.PR_SET_SECCOMP, confine.SECCOMP_MODE_FILTER,
                  ctypes.byref(confine._SockFprog(len(prog), filters)), 0, 0) == 0
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def test_without_pivot_root_the_empty_root_is_a_chroot_and_holds(tmp_path: Path, victims: Victims) -> None:
    import json

    raw = tmp_path / "raw.py"
    raw.write_text(
        f"import os, errno, ctypes\nNEWFSTATAT = {NR['newfstatat']}\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "def call(fn, *args):\n"
        "    try:\n"
        "        fn(*args)\n"
        "        return 'ok'\n"
        "    except OSError as exc:\n"
        "        return errno.errorcode[exc.errno]\n"
        "RESULT['listdir'] = call(os.listdir, '/')\n"
        "RESULT['chdir up'] = call(os.chdir, '/..')\n"
        "RESULT['chroot'] = 'EPERM' if libc.chroot(b'/tmp') != 0 and ctypes.get_errno() == 1 else 'ok'\n"
        "buf = ctypes.create_string_buffer(256)\n"
        "ctypes.set_errno(0)\n"
        "RESULT['raw stat /etc/passwd'] = errno.errorcode[ctypes.get_errno()] if libc.syscall(NEWFSTATAT, -100, b'/etc/passwd', buf, 0x1000) < 0 else 'found'\n"
        "RESULT['raw stat /'] = 'found' if libc.syscall(NEWFSTATAT, -100, b'/..', buf, 0x1000) == 0 else 'missing'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", NO_PIVOT_ROOT, str(HERE.parents[1]), str(HERE / "breach_probe.py"), str(raw)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["host"]["layers"]["emptyroot"] == "chroot" and report["host"]["layers"]["errors"] == {}
    assert report["outcome"] == "ok", report
    assert report["result"] == {
        "listdir": "EPERM",
        "chdir up": "EPERM",
        "chroot": "EPERM",
        "raw stat /etc/passwd": "ENOENT",
        "raw stat /": "found",
    }
    victims.assert_untouched()
    assert_probe_recovered(report)
