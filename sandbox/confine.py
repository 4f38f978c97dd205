"""The OS layer of the sandbox, applied by a host process to itself before it reads user code.

Layers (each reported at start-up, each best effort where the kernel or privileges do not allow):
``pdeathsig`` (die with the client), ``netns`` (a private, empty network namespace — root only),
``rlimits`` (address space, CPU, NPROC=0, FSIZE=0, NOFILE, CORE=0), ``nobody`` (drop to an
unprivileged uid/gid when root), ``nodump`` (other hosts running as ``nobody`` cannot ptrace or read
our memory), ``no_new_privs`` and ``seccomp`` (a raw BPF filter refusing sockets, exec, fork/clone,
ptrace, kill, open and namespace/keyring/bpf syscalls with EPERM).
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
CLONE_NEWNET = 0x40000000

SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_KILL_PROCESS = 0x80000000
EPERM = 1
CPU_HARD_SECONDS = 24 * 3600  # the soft limit is re-armed per call by the host

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_RET_K = 0x06

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# Syscalls a strategy host never needs after boot.
DENIED_SYSCALLS = {
    "x86_64": {
        "open": 2, "socket": 41, "connect": 42, "accept": 43, "sendto": 44, "recvfrom": 45, "sendmsg": 46,
        "recvmsg": 47, "bind": 49, "listen": 50, "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58,
        "execve": 59, "kill": 62, "creat": 85, "ptrace": 101, "personality": 135, "mount": 165, "tkill": 200,
        "tgkill": 234, "add_key": 248, "request_key": 249, "keyctl": 250, "openat": 257, "unshare": 272,
        "accept4": 288, "perf_event_open": 298, "setns": 308, "process_vm_readv": 310,
        "process_vm_writev": 311, "bpf": 321, "execveat": 322, "userfaultfd": 323, "io_uring_setup": 425,
        "clone3": 435, "openat2": 437,
    },
    "aarch64": {
        "openat": 56, "ptrace": 117, "kill": 129, "tkill": 130, "tgkill": 131, "socket": 198, "socketpair": 199,
        "bind": 200, "listen": 201, "accept": 202, "connect": 203, "sendto": 206, "recvfrom": 207,
        "sendmsg": 211, "recvmsg": 212, "clone": 220, "execve": 221, "accept4": 242, "execveat": 281,
        "unshare": 97, "setns": 268, "mount": 40, "bpf": 280, "perf_event_open": 241,
        "process_vm_readv": 270, "process_vm_writev": 271, "userfaultfd": 282, "io_uring_setup": 425,
        "clone3": 435, "openat2": 437, "add_key": 217, "request_key": 218, "keyctl": 219,
    },
}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def set_pdeathsig() -> bool:
    import signal

    ok = int(_libc().prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    if os.getppid() == 1:  # the client died before we armed it
        os._exit(0)
    return ok


def unshare_network() -> bool:
    if os.geteuid() != 0:
        return False
    return int(_libc().unshare(CLONE_NEWNET)) == 0


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


def drop_privileges() -> bool:
    if os.geteuid() != 0:
        return False
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return False
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    return os.getuid() == nobody.pw_uid and os.geteuid() == nobody.pw_uid


def set_nondumpable() -> bool:
    return int(_libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0


def set_no_new_privs() -> bool:
    return int(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) == 0


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install_seccomp() -> bool:
    """Install the deny-list filter; needs no_new_privs. Returns False where unsupported."""
    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        return False
    denied = sorted(set(DENIED_SYSCALLS[arch].values()))
    prog: list[tuple[int, int, int, int]] = [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if arch == "x86_64":  # refuse the x32 ABI aliases wholesale
        prog += [(BPF_JGE_K, 0, 1, 0x40000000), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM)]
    for nr in denied:
        prog += [(BPF_JEQ_K, 0, 1, nr), (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM)]
    prog.append((BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = _libc()
    libc.prctl.argtypes = None  # type: ignore[assignment]  # None = no prototype (valid; the stub omits it)
    return int(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)) == 0


def confine(memory_bytes: int, open_files: int, cpu_seconds: int) -> dict[str, Any]:
    """Apply every layer in a safe order; return {layer: active}."""
    layers: dict[str, Any] = {}
    layers["pdeathsig"] = set_pdeathsig()
    layers["netns"] = unshare_network()
    layers["rlimits"] = apply_rlimits(memory_bytes, open_files, cpu_seconds)
    layers["nobody"] = drop_privileges()
    layers["nodump"] = set_nondumpable()
    layers["no_new_privs"] = set_no_new_privs()
    layers["seccomp"] = install_seccomp() if layers["no_new_privs"] else False
    return layers
