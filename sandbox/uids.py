"""Per-host uid leases: no two sandbox hosts on one machine run as the same uid.

A lease is an exclusive ``flock`` on ``<lease dir>/<uid>``. The client takes one per host it
spawns and hands the open file to the host's keeper process (see :mod:`sandbox.host`), which holds
it until the host has exited: the kernel drops the lock when the last holder dies, so a lease is
released on every kind of exit (kill, crash, a worker's death) and never leaks. Leases are shared
by every worker process on the machine through the directory; workers in separate containers on
one machine must share it (a volume) or use disjoint ranges.

``STRATBOX_SANDBOX_UIDS`` (``first-last``, default ``40000-49999``) is the reserved range: no user,
file or process of the machine may own these uids. ``STRATBOX_SANDBOX_LEASE_DIR`` (default
``/run/stratbox-sandbox-uids``, or ``<tmp>/stratbox-sandbox-uids`` when /run is not writable) is
the directory, created root-only.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import stat
import tempfile

DEFAULT_RANGE = (40000, 49999)


class LeaseError(RuntimeError):
    pass


def uid_range() -> tuple[int, int]:
    raw = os.environ.get("STRATBOX_SANDBOX_UIDS", "")
    if not raw:
        return DEFAULT_RANGE
    try:
        first, last = (int(part) for part in raw.split("-", 1))
    except ValueError:
        raise LeaseError(f"STRATBOX_SANDBOX_UIDS={raw!r} is not 'first-last'") from None
    if not 0 < first <= last < 2**32 - 1:
        raise LeaseError(f"STRATBOX_SANDBOX_UIDS={raw!r} is not a range of unprivileged uids")
    return first, last


def lease_dir() -> str:
    path = os.environ.get("STRATBOX_SANDBOX_LEASE_DIR", "")
    if not path:
        path = (
            "/run/stratbox-sandbox-uids"
            if os.access("/run", os.W_OK)
            else os.path.join(tempfile.gettempdir(), "stratbox-sandbox-uids")
        )
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise LeaseError(
            f"{path} must be a directory owned by uid {os.geteuid()} and writable by no one else"
        )
    return path


def lease() -> tuple[int, int]:
    """Take a free uid of the range: returns ``(uid, fd)``; closing every copy of ``fd`` releases it."""
    first, last = uid_range()
    directory = lease_dir()
    span = last - first + 1
    start = random.randrange(span)  # noqa: S311 - spreads contention, not a secret
    for i in range(span):
        uid = first + (start + i) % span
        fd = os.open(
            os.path.join(directory, str(uid)), os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        return uid, fd
    raise LeaseError(f"every uid of {first}-{last} is leased: widen STRATBOX_SANDBOX_UIDS")
