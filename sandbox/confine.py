"""The OS layer of the sandbox, applied by a host process to itself before it reads user code.

Assume breach: every layer here must hold with arbitrary Python (ctypes included) running in the
host. Layers, each reported at start-up (:func:`confine` returns ``{layer: active}`` and
``errors`` says why a layer is off):

``namespaces``
    A PID namespace (the host is pid 1 of its own namespace: it sees and can name no other
    process), a mount namespace, a network namespace (no interface but a down loopback), IPC and
    UTS namespaces. Entered before the fork in :mod:`sandbox.host` (root only).
``emptyroot``
    The root file system is swapped (``pivot_root``) for an empty, read-only tmpfs after the host
    has imported everything: no path on the machine can be opened, listed, stat'ed or changed.
``rlimits``
    Address space, CPU, NPROC=0, FSIZE=0, NOFILE, CORE=0, MEMLOCK=0.
``uid``
    A uid (and gid) of its own, leased from a reserved range by the client (see
    :mod:`sandbox.uids`): no two hosts on the machine share a uid. ``nobody`` is kept as the
    report that the host runs unprivileged.
``nodump`` / ``no_new_privs``
    Not ptrace-able or core-dumped; no privilege gain through exec.
``landlock``
    No file-system access right at all, no TCP bind/connect, and (ABI 6+) signals and abstract
    UNIX sockets scoped to the host itself.
``seccomp``
    A default-deny allow-list: only the system calls a serving host makes (read/write on its
    pipes, memory, clocks, its own CPU limit). Everything else — signals, pidfd, ptrace, prlimit
    of others, files, sockets, exec, fork, clone/threads — fails with ``EPERM``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
EPERM = errno.EPERM
CPU_HARD_SECONDS = 24 * 3600  # the soft limit is re-armed per call by the host
AT_EMPTY_PATH = 0x1000

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_RET_K = 0x06

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# What a host calls after start-up (measured with strace over ticks, renders, backtests, loads,
# validation, memory and recursion failures), hottest first: the filter is a linear scan.
# Everything not listed is refused with EPERM. Three are allowed only with fixed arguments:
# prlimit64 on the host itself and RLIMIT_CPU (the per-call CPU budget), newfstatat only as
# fstat (AT_EMPTY_PATH; a path would name nothing anyway: the root is empty).
ALLOWED_SYSCALLS = {
    "x86_64": {
        "read": 0,
        "write": 1,
        "getrusage": 98,
        "mmap": 9,
        "munmap": 11,
        "brk": 12,
        "mremap": 25,
        "madvise": 28,
        "mprotect": 10,
        "close": 3,
        "fstat": 5,
        "lseek": 8,
        "futex": 202,
        "clock_gettime": 228,
        "clock_getres": 229,
        "gettimeofday": 96,
        "time": 201,
        "nanosleep": 35,
        "clock_nanosleep": 230,
        "getrandom": 318,
        "getpid": 39,
        "gettid": 186,
        "getppid": 110,
        "getuid": 102,
        "geteuid": 107,
        "getgid": 104,
        "getegid": 108,
        "sched_yield": 24,
        "rt_sigreturn": 15,
        "restart_syscall": 219,
        "exit": 60,
        "exit_group": 231,
    },
    "aarch64": {
        "read": 63,
        "write": 64,
        "getrusage": 165,
        "mmap": 222,
        "munmap": 215,
        "brk": 214,
        "mremap": 216,
        "madvise": 233,
        "mprotect": 226,
        "close": 57,
        "fstat": 80,
        "lseek": 62,
        "futex": 98,
        "clock_gettime": 113,
        "clock_getres": 114,
        "gettimeofday": 169,
        "nanosleep": 101,
        "clock_nanosleep": 115,
        "getrandom": 278,
        "getpid": 172,
        "gettid": 178,
        "getppid": 173,
        "getuid": 174,
        "geteuid": 175,
        "getgid": 176,
        "getegid": 177,
        "sched_yield": 124,
        "rt_sigreturn": 139,
        "restart_syscall": 128,
        "exit": 93,
        "exit_group": 94,
    },
}
PRLIMIT64 = {"x86_64": 302, "aarch64": 261}
NEWFSTATAT = {"x86_64": 262, "aarch64": 79}
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF = 444, 446  # the same on every architecture
LANDLOCK_CREATE_RULESET_VERSION = 1


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _err(what: str) -> str:
    code = ctypes.get_errno()
    return f"{what} failed: {errno.errorcode.get(code, code)} ({os.strerror(code)})"


def set_pdeathsig() -> bool:
    import signal

    ok = int(_libc().prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    if os.getppid() == 1:  # the client died before we armed it
        os._exit(0)
    return ok


def empty_root(mount_dir: str) -> tuple[str, str]:
    """Swap the root for an empty read-only tmpfs mounted on ``mount_dir`` (in our mount namespace).

    Returns how (``"pivot_root"``: the old root is detached from the namespace; ``"chroot"``: where
    the container's seccomp profile has no ``pivot_root``, as Docker's default does not — the old
    root stays mounted but unreachable: no capability, no directory descriptor, no ``chroot``,
    ``fchdir`` or ``open*`` call is left to the host) or ``""`` and why not.
    """
    libc = _libc()
    arch = platform.machine()
    if arch not in PIVOT_ROOT:
        return "", f"no pivot_root number for {arch}"
    if int(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)) != 0:
        return "", _err("making / private")
    target = os.fsencode(mount_dir)
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if int(libc.mount(b"stratbox-empty", target, b"tmpfs", flags, b"size=4k,nr_inodes=2,mode=555")) != 0:
        return "", (
            _err("mounting the empty root")
            + " (AppArmor may refuse mount: run the worker unconfined or with a profile allowing it)"
        )
    os.chdir(mount_dir)
    how = "pivot_root"
    if int(libc.syscall(PIVOT_ROOT[arch], b".", b".")) == 0:
        if int(libc.umount2(b".", MNT_DETACH)) != 0:
            return "", _err("detaching the old root")
    elif int(libc.chroot(b".")) == 0:
        how = "chroot"
    else:
        return "", _err("pivot_root and chroot")
    os.chdir("/")
    return (how, "") if os.listdir("/") == [] else ("", "the new root is not empty")


def apply_rlimits(memory_bytes: int, open_files: int, cpu_seconds: int) -> dict[str, bool]:
    applied: dict[str, bool] = {}
    wanted = {
        "AS": (resource.RLIMIT_AS, memory_bytes),
        "CPU": (resource.RLIMIT_CPU, cpu_seconds),
        "NPROC": (resource.RLIMIT_NPROC, 0),
        "FSIZE": (resource.RLIMIT_FSIZE, 0),
        "NOFILE": (resource.RLIMIT_NOFILE, open_files),
        "CORE": (resource.RLIMIT_CORE, 0),
        "MEMLOCK": (resource.RLIMIT_MEMLOCK, 0),
    }
    for name, (res, value) in wanted.items():
        try:
            if name == "CPU":
                resource.setrlimit(res, (value, CPU_HARD_SECONDS))
            else:
                resource.setrlimit(res, (value, value))
            applied[name] = True
        except (ValueError, OSError):
            applied[name] = False
    return applied


def drop_privileges(uid: int | None) -> tuple[bool, str]:
    """Become ``uid`` (gid the same number), or ``nobody`` without a lease; root only."""
    if os.geteuid() != 0:
        return (
            False,
            "the worker is not root: the host keeps the worker's own uid (needs CAP_SETUID/CAP_SETGID)",
        )
    if uid is None:
        import pwd

        try:
            uid = pwd.getpwnam("nobody").pw_uid
        except KeyError:
            return False, "no uid lease and no nobody user"
    try:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        return False, f"setuid({uid}) failed: {exc} (is the uid range mapped in this user namespace?)"
    return os.getresuid() == (uid, uid, uid), ""


def set_nondumpable() -> bool:
    return int(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0


def set_no_new_privs() -> bool:
    return int(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) == 0


class _LandlockAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


def landlock() -> tuple[int, str]:
    """Restrict ourselves to no file-system right, no TCP, signals scoped; returns the ABI used (0 = off)."""
    libc = _libc()
    abi = int(libc.syscall(LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        return 0, _err("Landlock") + " (the kernel is older than 5.13 or boots without lsm=landlock)"
    fs = (1 << 13) - 1  # execute .. make_sym (ABI 1)
    if abi >= 2:
        fs |= 1 << 13  # refer
    if abi >= 3:
        fs |= 1 << 14  # truncate
    if abi >= 5:
        fs |= 1 << 15  # ioctl_dev
    attr = _LandlockAttr(fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    fd = int(libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0))
    if fd < 0:
        return 0, _err("landlock_create_ruleset")
    try:
        if int(libc.syscall(LANDLOCK_RESTRICT_SELF, fd, 0)) != 0:
            return 0, _err("landlock_restrict_self")
    finally:
        os.close(fd)
    return abi, ""


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _arg_lo(n: int) -> int:
    return 16 + 8 * n  # seccomp_data.args[n], low 32 bits (little-endian)


def _when_args(nr: int, checks: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """``nr`` allowed only when every (offset, value) word matches; else EPERM."""
    body: list[tuple[int, int, int, int]] = []
    for offset, value in checks:
        body.append((BPF_LD_W_ABS, 0, 0, offset))
        body.append((BPF_JEQ_K, 0, 0, value))  # jf patched below
    body += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM)]
    deny = len(body) - 1
    body = [
        (c, jt, deny - i - 1, k) if c == BPF_JEQ_K else (c, jt, jf, k)
        for i, (c, jt, jf, k) in enumerate(body)
    ]
    return [(BPF_JEQ_K, 0, len(body), nr), *body]


def seccomp_program(arch: str) -> list[tuple[int, int, int, int]]:
    prog: list[tuple[int, int, int, int]] = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if arch == "x86_64":  # refuse the x32 ABI aliases wholesale
        prog += [(BPF_JGE_K, 0, 1, 0x40000000), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM)]
    for nr in ALLOWED_SYSCALLS[arch].values():
        prog += [(BPF_JEQ_K, 0, 1, nr), (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]
    # prlimit64(0, RLIMIT_CPU, ...): pid 0 (both words) and resource 0.
    prog += _when_args(PRLIMIT64[arch], [(_arg_lo(0), 0), (_arg_lo(0) + 4, 0), (_arg_lo(1), 0)])
    prog += [(BPF_LD_W_ABS, 0, 0, 0)]  # reload nr after the argument checks
    prog += _when_args(NEWFSTATAT[arch], [(_arg_lo(3), AT_EMPTY_PATH)])
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM))
    return prog


def install_seccomp() -> tuple[bool, str]:
    """Install the allow-list filter; needs no_new_privs."""
    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        return False, f"no seccomp allow-list for {arch}"
    prog = seccomp_program(arch)
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = _libc()
    libc.prctl.argtypes = None  # type: ignore[assignment]  # None = no prototype (valid; the stub omits it)
    if int(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)) != 0:
        return False, _err(
            "seccomp"
        ) + " (the container's seccomp profile may refuse nested filters or prctl)"
    return True, ""


def confine(
    memory_bytes: int,
    open_files: int,
    cpu_seconds: int,
    *,
    uid: int | None = None,
    namespaces: tuple[bool, str] = (False, "not requested"),
    root_dir: str | None = None,
) -> dict[str, Any]:
    """Apply every layer in a safe order; return ``{layer: active, ..., "errors": {layer: why}}``.

    ``namespaces`` is the outcome of the keeper split (:mod:`sandbox.keeper`), before the host forked.
    """
    errors: dict[str, str] = {}
    layers: dict[str, Any] = {}

    def record(name: str, outcome: tuple[Any, str]) -> None:
        layers[name] = outcome[0]
        if not outcome[0]:
            errors[name] = outcome[1]

    layers["pdeathsig"] = set_pdeathsig()
    record(
        "pidns",
        (namespaces[0] and os.getpid() == 1, namespaces[1] or "the host is not pid 1 of its namespace"),
    )
    layers["netns"] = layers["pidns"]  # entered together with the PID namespace
    if not layers["netns"]:
        errors["netns"] = "entered with the PID namespace (see pidns)"
    if layers["pidns"] and root_dir is not None:
        record("emptyroot", empty_root(root_dir))
    else:
        record("emptyroot", ("", "needs the host's own mount namespace (see pidns)"))
    layers["rlimits"] = apply_rlimits(memory_bytes, open_files, cpu_seconds)
    if not all(layers["rlimits"].values()):
        errors["rlimits"] = "setrlimit refused: " + ", ".join(
            k for k, v in layers["rlimits"].items() if not v
        )
    record("uid", drop_privileges(uid))
    layers["nobody"] = layers["uid"]
    if layers["uid"]:
        layers["uid"] = os.getuid()
    layers["nodump"] = set_nondumpable()
    layers["no_new_privs"] = set_no_new_privs()
    record("landlock", landlock() if layers["no_new_privs"] else (0, "needs no_new_privs"))
    record("seccomp", install_seccomp() if layers["no_new_privs"] else (False, "needs no_new_privs"))
    for name in ("pdeathsig", "nodump", "no_new_privs"):
        if not layers[name]:
            errors[name] = f"prctl for {name} failed"
    layers["errors"] = errors
    return layers
