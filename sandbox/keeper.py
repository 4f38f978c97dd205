"""The first step of a host's boot: fresh namespaces, then the fork into keeper and host.

Loaded by file path from the boot line (:data:`sandbox.host.BOOT`), *not* imported as
``sandbox.keeper``: importing anything of the package would run ``sandbox/__init__`` and load the
client, RestrictedPython and the rest into the keeper, which stays alive as long as its host. Kept
to the standard library and ctypes, it costs ~3 MiB PSS per host instead of ~10.

Root only: unshare PID, mount, network, IPC and UTS namespaces, then fork. The child is pid 1 of
the new PID namespace and goes on to become the host (:func:`sandbox.host.main`); the parent — the
keeper — stays outside, holds the host's uid lease, waits for the host and exits as it did
(same exit code, or the same signal), so the client sees the host's fate as its own child's.
Without root (or without ``CAP_SYS_ADMIN``) nothing is unshared and no keeper is made; the host
reports the namespace layers as off, with the reason.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_DUMPABLE = 4


def _prctl(option: int, value: int) -> bool:
    return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)) == 0


def _keep(child: int) -> None:
    """Wait for the host, then leave exactly as it did; stop it if the client goes away. Never returns.

    The keeper has no parent-death signal: ``PR_SET_PDEATHSIG`` fires when the *thread* that
    spawned us exits, and a multi-threaded client spawns spares from threads that end. Instead it
    watches its copy of the request pipe's read end: all its writers gone (POLLHUP) means the
    client closed it or died, and the host is stopped. The host's own parent-death signal is tied
    to this single-threaded keeper.
    """
    import select

    _prctl(PR_SET_DUMPABLE, 0)  # mirroring SIGXCPU/SIGSYS below must not dump a core
    watch = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDWR)  # let go of the host's pipes: the client must see
    for fd in (0, 1, 2):  # end-of-file the moment the host dies
        os.dup2(devnull, fd)
    os.close(devnull)
    poller = select.poll()
    pidfd = os.pidfd_open(child)
    poller.register(pidfd, select.POLLIN)
    poller.register(watch, 0)  # POLLHUP/POLLERR only: the keeper never reads the host's requests
    while True:
        for fd, _events in poller.poll():
            if fd == watch:
                poller.unregister(watch)
                os.kill(child, signal.SIGKILL)
        reaped, status = os.waitpid(child, os.WNOHANG)
        if reaped:
            break
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def split() -> tuple[bool, str]:
    """Unshare and fork; returns in the host only: ``(namespaces entered, why not)``.

    The uid lease (``argv[3]``'s ``lease_fd``) stays open in the keeper; the host closes its copy.
    """
    if os.geteuid() != 0:
        return False, (
            "the worker is not root in its container: unshare(CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET) "
            "needs root and CAP_SYS_ADMIN"
        )
    libc = ctypes.CDLL(None, use_errno=True)
    if int(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)) != 0:
        code = ctypes.get_errno()
        return False, (
            f"unshare(PID|mount|net|IPC|UTS namespaces) failed: {errno.errorcode.get(code, code)} "
            f"({os.strerror(code)}) (the container lacks CAP_SYS_ADMIN, or its seccomp/AppArmor profile "
            "refuses unshare)"
        )
    child = os.fork()
    if child:
        _keep(child)
    return True, ""
