"""Assume breach: raw Python (no RestrictedPython) in a confined host harms nothing but itself.

One test per capability. Each runs its payload through the breach probe (tests/sandbox/breach_probe.py,
a separate process like a second worker) and asserts the exact errno or outcome, that every victim
— another tenant's host, a sibling host of the probe's own tenant, this test process — is
untouched, and that the next legitimate calls of the same tenant and of another tenant succeed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from breach_support import Victims, assert_probe_recovered, run_probe

from sandbox import uids


@pytest.fixture(scope="module")
def victims() -> Iterator[Victims]:
    v = Victims()
    yield v
    v.close()


def breach(victims: Victims, code: str) -> dict:
    report = run_probe(code, *victims.args())
    assert report.get("outcome") == "ok", report
    victims.assert_untouched()
    assert_probe_recovered(report)
    return report["result"]


def test_every_layer_is_active_in_the_probe_host(victims: Victims) -> None:
    report = run_probe("RESULT['pid'] = os.getpid()")
    layers = report["host"]["layers"]
    assert (
        layers["emptyroot"] == "pivot_root"
    )  # the old root is gone from the namespace, not just out of reach
    for name in ("pdeathsig", "pidns", "netns", "nobody", "nodump", "no_new_privs", "seccomp"):
        assert layers[name] is True, (name, layers["errors"])
    assert layers["landlock"] >= 1 and all(layers["rlimits"].values()) and layers["errors"] == {}
    assert report["host"]["ns_pid"] == 1 and report["result"] == {"pid": 1}


def test_cannot_signal_or_stop_any_process(victims: Victims) -> None:
    result = breach(
        victims,
        """
        import signal
        for pid in VICTIMS + [-1, 0]:
            for sig in (signal.SIGKILL, signal.SIGSTOP, 0):
                RESULT[f"kill {pid} {sig}"] = call(os.kill, pid, sig)
        for pid in VICTIMS:
            RESULT[f"tgkill {pid}"] = sysc("tgkill", pid, pid, int(signal.SIGKILL))
            RESULT[f"rt_sigqueueinfo {pid}"] = sysc("rt_sigqueueinfo", pid, int(signal.SIGSTOP), ctypes.create_string_buffer(128))
            RESULT[f"rt_tgsigqueueinfo {pid}"] = sysc("rt_tgsigqueueinfo", pid, pid, int(signal.SIGKILL), ctypes.create_string_buffer(128))
        RESULT["killpg"] = call(os.killpg, 0, signal.SIGKILL)
    """,
    )
    assert set(result.values()) == {"EPERM"}, result
    assert len(result) == 5 * 3 + 3 * 3 + 1


def test_cannot_pidfd_any_process(victims: Victims) -> None:
    result = breach(
        victims,
        """
        for pid in VICTIMS + [1]:
            RESULT[f"pidfd_open {pid}"] = call(os.pidfd_open, pid)
            RESULT[f"raw pidfd_open {pid}"] = sysc("pidfd_open", pid, 0)
        for fd in range(8):  # whatever fd might be a pidfd: none is, and the call is refused anyway
            RESULT[f"pidfd_send_signal {fd}"] = sysc("pidfd_send_signal", fd, 9, None, 0)
    """,
    )
    assert set(result.values()) == {"EPERM"}, result


def test_cannot_trace_or_read_another_process(victims: Victims) -> None:
    result = breach(
        victims,
        """
        PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
        buf = ctypes.create_string_buffer(64)
        iov = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 64)
        for pid in VICTIMS:
            RESULT[f"attach {pid}"] = sysc("ptrace", PTRACE_ATTACH, pid, 0, 0)
            RESULT[f"seize {pid}"] = sysc("ptrace", PTRACE_SEIZE, pid, 0, 0)
            RESULT[f"vm_readv {pid}"] = sysc("process_vm_readv", pid, iov, 1, iov, 1, 0)
    """,
    )
    assert set(result.values()) == {"EPERM"}, result


def test_cannot_prlimit_another_process_or_raise_its_own_limits(victims: Victims) -> None:
    result = breach(
        victims,
        """
        import resource
        CPU, NOFILE, NPROC, AS = 0, 7, 6, 9
        tiny = (ctypes.c_uint64 * 2)(1, 1)
        old = (ctypes.c_uint64 * 2)()
        for pid in VICTIMS:
            RESULT[f"prlimit AS {pid}"] = call(resource.prlimit, pid, resource.RLIMIT_AS, (1, 1))
            RESULT[f"raw prlimit CPU {pid}"] = sysc("prlimit64", pid, CPU, tiny, None)
            RESULT[f"raw prlimit read {pid}"] = sysc("prlimit64", pid, NOFILE, None, old)
        big = (ctypes.c_uint64 * 2)(2**64 - 1, 2**64 - 1)
        for name, res in (("AS", AS), ("NOFILE", NOFILE), ("NPROC", NPROC)):
            RESULT[f"own {name}"] = sysc("prlimit64", 0, res, big, None)
        # the one call the host makes itself: its own CPU budget, never above the hard limit
        sysc("prlimit64", 0, CPU, None, old)
        raised = (ctypes.c_uint64 * 2)(old[0], old[1] + 1)
        RESULT["own CPU raise hard"] = sysc("prlimit64", 0, CPU, raised, None)
    """,
    )
    assert set(result.values()) == {"EPERM"}, result


def test_sees_no_other_process(victims: Victims) -> None:
    result = breach(
        victims,
        """
        RESULT["pid"], RESULT["ppid"] = os.getpid(), os.getppid()
        RESULT["listdir /proc"] = call(os.listdir, "/proc")
        for pid in VICTIMS:
            RESULT[f"stat /proc/{pid}"] = call(os.stat, f"/proc/{pid}")
            # the raw fstat form the filter lets through names nothing: the root is empty
            RESULT[f"raw stat /proc/{pid}"] = sysc("newfstatat", -100, f"/proc/{pid}".encode(), ctypes.create_string_buffer(256), 0x1000)
    """,
    )
    pids = victims.args()
    assert result.pop("pid") == 1 and result.pop("ppid") == 0
    assert result.pop("listdir /proc") == "EPERM"
    assert result == {
        **{f"stat /proc/{p}": "EPERM" for p in pids},
        **{f"raw stat /proc/{p}": "ENOENT" for p in pids},
    }


def test_syscalls_outside_the_allow_list_are_refused(victims: Victims) -> None:
    result = breach(
        victims,
        """
        for name, args in [("unshare", (0x40000000,)), ("setns", (0, 0)), ("mount", (None, None, None, 0, None)),
                           ("bpf", (0, None, 0)), ("perf_event_open", (None, 0, -1, -1, 0)), ("io_uring_setup", (1, None)),
                           ("userfaultfd", (0,)), ("keyctl", (0, 0)), ("setuid", (0,)), ("chroot", (b"/",)),
                           ("personality", (0xffffffff,)), ("landlock_create_ruleset", (None, 0, 1)),
                           ("seccomp", (0, 0, None)), ("ioctl", (0, 0x5412, None)), ("memfd_create", (b"x", 0)),
                           ("getcwd", (ctypes.create_string_buffer(256), 256)), ("getdents64", (0, None, 0))]:
            RESULT[name] = sysc(name, *args)
        RESULT["unassigned 460"] = None
        ctypes.set_errno(0)
        if libc.syscall(ctypes.c_long(460)) < 0:
            RESULT["unassigned 460"] = errno.errorcode[ctypes.get_errno()]
    """,
    )
    assert set(result.values()) == {"EPERM"}, result


def test_no_file_system_effect_or_inspection(victims: Victims) -> None:
    marker = "/tmp/sbx-pwned-breach"
    result = breach(
        victims,
        f"""
        M = {marker!r}
        RESULT["mknod"] = call(os.mknod, M + "-fifo", 0o10666)
        RESULT["symlink"] = call(os.symlink, "/etc/passwd", M + "-link")
        RESULT["mkdir"] = call(os.mkdir, M + "-dir")
        RESULT["rename"] = call(os.rename, "/tmp", M + "-moved")
        RESULT["chmod"] = call(os.chmod, "/tmp", 0o777)
        RESULT["chown"] = call(os.chown, "/tmp", 0, 0)
        RESULT["stat"] = call(os.stat, "/etc/passwd")
        RESULT["lstat"] = call(os.lstat, "/")
        RESULT["readlink"] = call(os.readlink, "/proc/self/exe")
        RESULT["listdir"] = call(os.listdir, "/")
        RESULT["unlink"] = call(os.unlink, "/etc/hostname")
        RESULT["open write"] = call(open, M, "w")
        RESULT["open read"] = call(open, "/etc/passwd", "rb")
        RESULT["truncate"] = call(os.truncate, "/etc/hostname", 0)
        RESULT["raw mknodat"] = sysc("mknodat", -100, (M + "-raw").encode(), 0o10666, 0)
        RESULT["raw symlinkat"] = sysc("symlinkat", b"/", -100, (M + "-raw").encode())
        RESULT["raw mkdirat"] = sysc("mkdirat", -100, (M + "-raw").encode(), 0o777)
        RESULT["raw renameat2"] = sysc("renameat2", -100, b"/tmp", -100, (M + "-raw").encode(), 0)
        RESULT["raw fchmodat"] = sysc("fchmodat", -100, b"/tmp", 0o777)
        RESULT["raw readlinkat"] = sysc("readlinkat", -100, b"/proc/self/exe", ctypes.create_string_buffer(256), 256)
        RESULT["raw openat"] = sysc("openat", -100, b"/etc/passwd", 0)
        RESULT["raw unlinkat"] = sysc("unlinkat", -100, b"/etc/hostname", 0)
        RESULT["raw fstat-form stat"] = sysc("newfstatat", -100, b"/etc/passwd", ctypes.create_string_buffer(256), 0x1000)
    """,
    )
    assert result.pop("raw fstat-form stat") == "ENOENT"  # allowed form, empty root: nothing to find
    assert set(result.values()) == {"EPERM"}, result
    assert not list(Path("/tmp").glob("sbx-pwned*")), "a payload wrote to the file system"
    assert oct(Path("/tmp").stat().st_mode & 0o7777) == "0o1777"


def test_no_network(victims: Victims) -> None:
    result = breach(
        victims,
        """
        for family, kind in [(2, 1), (2, 2), (10, 1), (1, 1), (16, 3), (17, 3)]:  # inet tcp/udp, inet6, unix, netlink, packet
            RESULT[f"socket {family} {kind}"] = sysc("socket", family, kind, 0)
        RESULT["socketpair"] = sysc("socketpair", 1, 1, 0, ctypes.create_string_buffer(8))
        try:
            import socket
            RESULT["import socket"] = "imported"
            RESULT["connect"] = call(socket.create_connection, ("127.0.0.1", 6379), 1)
        except ImportError:
            RESULT["import socket"] = "ImportError"
    """,
    )
    assert result.pop("import socket") == "ImportError"  # not loaded, and no file can be opened to load it
    assert set(result.values()) == {"EPERM"}, result


def test_cannot_execute_a_program(victims: Victims) -> None:
    result = breach(
        victims,
        """
        RESULT["execv"] = call(os.execv, "/bin/sh", ["sh", "-c", "touch /tmp/sbx-pwned-exec"])
        RESULT["execve python"] = call(os.execve, "/usr/bin/python3", ["python3"], {})
        RESULT["execveat"] = sysc("execveat", -100, b"/bin/sh", None, None, 0)
        RESULT["posix_spawn"] = call(os.posix_spawn, "/bin/sh", ["sh"], {})
    """,
    )
    assert set(result.values()) == {"EPERM"}, result
    assert not list(Path("/tmp").glob("sbx-pwned*"))


def test_cannot_fork_or_start_threads(victims: Victims) -> None:
    result = breach(
        victims,
        """
        import _thread
        RESULT["fork"] = call(os.fork)
        RESULT["raw clone"] = sysc("clone", 17, 0, 0, 0, 0)  # SIGCHLD: a plain fork
        RESULT["raw clone3"] = sysc("clone3", ctypes.create_string_buffer(88), 88)
        try:
            _thread.start_new_thread(lambda: None, ())
            RESULT["thread"] = "started"
        except RuntimeError as exc:
            RESULT["thread"] = str(exc)
    """,
    )
    assert result == {
        "fork": "EPERM",
        "raw clone": "EPERM",
        "raw clone3": "EPERM",
        "thread": "can't start new thread",
    }


def test_every_host_has_its_own_leased_uid(victims: Victims) -> None:
    first, last = uids.uid_range()
    report = run_probe(
        "RESULT['uid'] = [os.getuid(), os.geteuid()]; RESULT['gid'] = [os.getgid(), os.getegid()]"
    )
    uid = report["result"]["uid"][0]
    assert first <= uid <= last and report["result"] == {"uid": [uid] * 2, "gid": [uid] * 2}
    victim_uids = {int(victims.before[t]["uid"]) for t in ("victim-tenant", "probe")}
    assert len(victim_uids) == 2 and uid not in victim_uids
    assert all(first <= u <= last for u in victim_uids)
    for tenant in ("victim-tenant", "probe"):  # no supplementary group either
        status = Path(f"/proc/{victims.pids[tenant]}/status").read_text()
        groups = next(line for line in status.splitlines() if line.startswith("Groups:"))
        assert groups.split(":", 1)[1].strip() == "", groups
