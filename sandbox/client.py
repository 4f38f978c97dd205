"""The trusted side: a pool of sandbox host processes, keyed by tenant, used by engine workers.

One :class:`SandboxClient` per worker process. A host never runs code of two tenants; hosts are
evicted least-recently-used, killed (whole process group) on timeout or memory exhaustion and
respawned on demand. The client remembers every loaded instance's source, config and last good
state, so a respawned or evicted host is re-populated transparently (``init()`` is not re-run).
Hosts are untrusted: their replies are size-capped strict JSON, and every error they report is
re-classified through :class:`SandboxError`.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import math
import os
import pickle
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import RestrictedPython

from sandbox import uids
from sandbox.barhistory import MAX_HISTORY_BARS
from sandbox.errors import ErrorCode, SandboxError
from sandbox.host import BOOT
from sandbox.limits import Limits
from sandbox.malformed import malformed_reply
from sandbox.protocol import HEADER

__all__ = ["Limits", "SandboxClient"]

_SEARCH_PATH = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(RestrictedPython.__file__).resolve().parent.parent),
]
_EMPTY_DIR: str | None = None
_LIVE_HOSTS: weakref.WeakSet[_Host] = weakref.WeakSet()
_PIPE_BYTES = 1 << 20  # the unprivileged maximum (/proc/sys/fs/pipe-max-size) by default


def _empty_dir() -> str:
    global _EMPTY_DIR
    if _EMPTY_DIR is None or not os.path.isdir(_EMPTY_DIR):
        _EMPTY_DIR = tempfile.mkdtemp(prefix="stratbox-sandbox-")
        os.chmod(_EMPTY_DIR, 0o555)  # noqa: S103 - readable, writable by no one (hosts run as nobody)
    return _EMPTY_DIR


class _HostGone(Exception):
    pass


class _Host:
    """One host process and its pipes."""

    def __init__(self, limits: Limits, boot: str | None = None) -> None:
        self.limits = limits
        self.spawned_at = time.monotonic()
        argv = [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            BOOT if boot is None else boot,  # the module's line as it is now (tests may swap it)
            json.dumps(_SEARCH_PATH),
            json.dumps(limits.to_dict()),
        ]
        lease_fd = -1
        if os.geteuid() == 0:  # only root can become the leased uid
            try:
                uid, lease_fd = uids.lease()
            except (uids.LeaseError, OSError) as exc:
                raise SandboxError(ErrorCode.HOST_CRASHED, f"no sandbox uid lease: {exc}") from None
            argv.append(json.dumps({"uid": uid, "lease_fd": lease_fd}))
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={},
                cwd=_empty_dir(),
                start_new_session=True,
                close_fds=True,
                pass_fds=(lease_fd,) if lease_fd >= 0 else (),
            )
        finally:
            if lease_fd >= 0:
                os.close(lease_fd)  # the host's keeper holds it from now on
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.wfd = self.proc.stdin.fileno()
        self.rfd = self.proc.stdout.fileno()
        os.set_blocking(self.wfd, False)
        os.set_blocking(self.rfd, False)
        # Bigger pipes (Linux; the default is 64 KiB): a 2 MB backtest chunk then crosses in a few
        # writes instead of ~40 writer/reader hand-offs. Best effort: a refusal changes nothing else.
        for fd in (self.wfd, self.rfd):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
            except (AttributeError, OSError):
                pass
        # One registered poll object per pipe instead of building select() sets on every wait.
        self.rpoll = select.poll()
        self.rpoll.register(self.rfd, select.POLLIN)
        self.wpoll = select.poll()
        self.wpoll.register(self.wfd, select.POLLOUT)
        self.buf = bytearray()
        self.info: dict[str, Any] | None = None
        self.host_pid: int | None = None  # set at ready when the host runs under a keeper
        self.tenant: str | None = None
        self.loaded: dict[str, str] = {}  # instance_id -> fingerprint
        self.dead = False
        _LIVE_HOSTS.add(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def wait_ready(self) -> dict[str, Any]:
        if self.info is None:
            try:
                reply = self._read_reply(time.monotonic() + self.limits.spawn_timeout, 1 << 20)
            except (_HostGone, TimeoutError):
                self.kill()
                raise SandboxError(ErrorCode.HOST_CRASHED, "the sandbox host failed to start") from None
            result = reply.get("result")
            info: dict[str, Any] = dict(result) if isinstance(result, dict) else {}
            info["startup_seconds"] = time.monotonic() - self.spawned_at
            missing = _missing_layers(info.get("layers"))
            if missing and strict_confinement():
                self.kill()
                raise ConfinementError(
                    "sandbox confinement layers are not active (STRATBOX_SANDBOX_STRICT=1): "
                    + "; ".join(f"{name}: {why}" for name, why in missing.items())
                )
            self.info = info
            self.host_pid = self._keepers_child(info.get("pid"))
        return self.info

    def _keepers_child(self, pid: Any) -> int | None:
        """The host's pid outside its namespace, when it is the keeper's child (read before any user code ran)."""
        if type(pid) is not int or pid == self.proc.pid:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return pid if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid else None

    def kill(self) -> None:
        if not self.dead:
            self.dead = True
            # The host first, while its keeper lives (so its pid cannot have been reused): the
            # keeper then reaps it and exits as it did. Killing both at once could orphan the
            # host to a pid 1 that never reaps. The whole group if anything is left.
            if self.host_pid is not None and self.proc.poll() is None:
                try:
                    os.kill(self.host_pid, signal.SIGKILL)
                    self.proc.wait(timeout=2)
                except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass

    # ------------------------------------------------------------- I/O with deadlines
    @staticmethod
    def _wait(poller: select.poll, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(max(1, math.ceil(remaining * 1000))):
            raise TimeoutError

    def _write(self, data: bytes, deadline: float) -> None:
        # Write first, wait only when the pipe is full: a small request costs one syscall.
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.wfd, view[: 1 << 20])
            except BlockingIOError:
                self._wait(self.wpoll, deadline)
                continue
            except (BrokenPipeError, OSError):
                raise _HostGone from None
            view = view[n:]
            if view and time.monotonic() >= deadline:
                raise TimeoutError

    def _fill(self, need: int, deadline: float) -> None:
        while len(self.buf) < need:
            self._wait(self.rpoll, deadline)
            try:
                chunk = os.read(self.rfd, max(need - len(self.buf), 1 << 16))
            except BlockingIOError:
                continue
            except OSError:
                raise _HostGone from None
            if not chunk:
                raise _HostGone
            self.buf += chunk

    def _read_reply(self, deadline: float, cap: int | None = None) -> dict[str, Any]:
        """One reply frame: its length is checked against ``cap`` before a byte of it is read,
        and decoding it is part of the call (a reply decoded after the deadline is a timeout)."""
        cap = self.limits.max_message_bytes if cap is None else cap
        self._fill(HEADER.size, deadline)
        (length,) = HEADER.unpack(self.buf[: HEADER.size])
        if length > cap:
            raise SandboxError(
                ErrorCode.OUTPUT_LIMIT,
                f"host reply of {length} bytes exceeds the call's limit of {cap} bytes",
            )
        self._fill(HEADER.size + length, deadline)
        data = bytes(self.buf[HEADER.size : HEADER.size + length])
        del self.buf[: HEADER.size + length]
        try:
            reply = _DECODER.decode(data.decode("utf-8"))
        except (ValueError, RecursionError):
            raise malformed_reply(data) from None  # HOST_CRASHED, or where an over-long int is
        finally:
            del data
        if time.monotonic() > deadline:
            raise TimeoutError
        if not isinstance(reply, dict):
            raise SandboxError(ErrorCode.HOST_CRASHED, "the host sent a malformed reply")
        return reply

    def _pump(self, data: bytes, deadline: float, cap: int) -> None:
        """Write a request while the previous one may still be in the host's hands.

        The host reads the next request only after writing its reply to the previous one, so the
        reply's bytes are taken in meanwhile (else a reply larger than the pipe and a request
        larger than the pipe would each wait for the other). At most that one reply frame is
        taken: its length is checked against ``cap`` as soon as its header is in, and nothing
        beyond the frame is read.
        """
        view = memoryview(data)
        both = select.poll()
        both.register(self.wfd, select.POLLOUT)
        both.register(self.rfd, select.POLLIN)
        while view:
            try:
                n = os.write(self.wfd, view[: 1 << 20])
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, OSError):
                raise _HostGone from None
            view = view[n:]
            if not view:
                return
            want = HEADER.size
            if len(self.buf) >= HEADER.size:
                (length,) = HEADER.unpack(self.buf[: HEADER.size])
                if length > cap:
                    raise SandboxError(
                        ErrorCode.OUTPUT_LIMIT,
                        f"host reply of {length} bytes exceeds the call's limit of {cap} bytes",
                    )
                want += length
            if len(self.buf) < want:
                self._wait(both, deadline)
                try:
                    chunk = os.read(self.rfd, want - len(self.buf))
                except BlockingIOError:
                    continue
                except OSError:
                    raise _HostGone from None
                if not chunk:
                    raise _HostGone
                self.buf += chunk
            else:
                self._wait(self.wpoll, deadline)  # the whole reply is in: only the request is left

    @contextmanager
    def _classified(self, timeout: float, what: str) -> Iterator[None]:
        """Pipe failures as SandboxErrors: a timeout or an oversized reply stops the host."""
        try:
            yield
        except TimeoutError:
            self.kill()
            raise SandboxError(
                ErrorCode.TIMEOUT, f"{what} exceeded its {timeout * 1000:.0f} ms budget; the host was stopped"
            ) from None
        except _HostGone:
            raise self._death_error(what) from None
        except SandboxError:
            self.kill()
            raise

    def _result(self, reply: dict[str, Any]) -> Any:
        if reply.get("fatal"):
            self.kill()
        if reply.get("ok") is True:
            return reply.get("result")
        raise SandboxError.from_dict(reply.get("error"))

    def request(self, msg: dict[str, Any], timeout: float, what: str) -> Any:
        """Send one request; return its result or raise a classified SandboxError."""
        self.wait_ready()
        payload = pickle.dumps(msg, protocol=5)
        deadline = time.monotonic() + timeout + 0.05 + len(payload) / 200e6
        with self._classified(timeout, what):
            self._write(HEADER.pack(len(payload)) + payload, deadline)
            reply = self._read_reply(deadline, self.limits.reply_cap(str(msg.get("cmd"))))
        return self._result(reply)

    def pipelined(self, msgs: Iterator[dict[str, Any]], timeout: float, what: str) -> Iterator[Any]:
        """Requests one ahead: the next is written while the host still works on the current
        one, so the host starts on it as soon as it has answered. Results come in order, each
        checked as :meth:`request` checks one; each call's deadline is ``timeout`` from when the
        host could start it. Stops at the first failure (the caller stops the host if it leaves
        with a request still in flight)."""
        self.wait_ready()
        cap = self.limits.reply_cap("backtest")

        def frame(msg: dict[str, Any]) -> bytes:
            payload = pickle.dumps(msg, protocol=5)
            return HEADER.pack(len(payload)) + payload

        msg = next(msgs, None)
        if msg is None:
            return
        data = frame(msg)
        deadline = time.monotonic() + timeout + 0.05 + len(data) / 200e6
        with self._classified(timeout, what):
            self._write(data, deadline)
        while True:
            msg = next(msgs, None)
            with self._classified(timeout, what):
                if msg is not None:
                    data = frame(msg)
                    self._pump(data, deadline + len(data) / 200e6, cap)
                reply = self._read_reply(deadline, cap)
            deadline = time.monotonic() + timeout + 0.05 + (len(data) / 200e6 if msg is not None else 0.0)
            yield self._result(reply)
            if msg is None:
                return

    def _death_error(self, what: str) -> SandboxError:
        try:
            code = self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        if code == -signal.SIGXCPU:
            return SandboxError(ErrorCode.TIMEOUT, f"{what} exceeded the host's CPU limit")
        if code == -signal.SIGSYS:
            return SandboxError(
                ErrorCode.FORBIDDEN, f"{what} made a forbidden system call; the host was stopped"
            )
        return SandboxError(
            ErrorCode.HOST_CRASHED, f"the sandbox host died during {what} (exit status {code})"
        )


class ConfinementError(SandboxError):
    """A host started without every confinement layer while ``STRATBOX_SANDBOX_STRICT=1``."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.HOST_CRASHED, message)


# Layers whose absence :func:`strict_confinement` turns into a refusal (see sandbox.confine).
REQUIRED_LAYERS = (
    "pdeathsig",
    "pidns",
    "netns",
    "emptyroot",
    "uid",
    "nodump",
    "no_new_privs",
    "landlock",
    "seccomp",
)


def strict_confinement() -> bool:
    """``STRATBOX_SANDBOX_STRICT=1`` (the test suite and CI set it): refuse a host missing a layer."""
    return os.environ.get("STRATBOX_SANDBOX_STRICT", "") == "1"


def _missing_layers(layers: Any) -> dict[str, str]:
    if not isinstance(layers, dict):
        return {"report": "the host reported no layers"}
    raw = layers.get("errors")
    errors: dict[str, Any] = raw if isinstance(raw, dict) else {}
    missing = {name: str(errors.get(name) or "inactive") for name in REQUIRED_LAYERS if not layers.get(name)}
    rlimits = layers.get("rlimits")
    if not isinstance(rlimits, dict) or not all(rlimits.values()):
        missing["rlimits"] = str(errors.get("rlimits") or "inactive")
    return missing


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # strict (no NaN/Infinity), built once


@dataclass
class _Spec:
    """What the client needs to (re)load an instance on any host."""

    source: str
    style: str
    exit_source: str | None
    config: dict[str, Any]
    seed: int | None
    fingerprint: str
    config_schema: dict[str, Any] | None
    state: Any = None
    broker_state: dict[str, Any] | None = None
    # The last bars of the chunks already run (packed columns): ``context.history`` reaches back
    # across chunks, and a respawned host gets them again with the next chunk.
    history_tail: dict[str, bytes] | None = None
    schema: dict[str, Any] = field(default_factory=dict)


class SandboxClient:
    """Pool of tenant-dedicated host processes (LRU, at most ``max_hosts``)."""

    def __init__(self, limits: Limits | None = None, max_hosts: int = 8, prespawn: bool = True) -> None:
        self.limits = limits or Limits()
        self.max_hosts = max(1, max_hosts)
        self.prespawn = prespawn
        self._pool: OrderedDict[str, _Host] = OrderedDict()
        self._specs: dict[tuple[str, str], _Spec] = {}
        self._spare: _Host | None = None
        # No lock spans tenants: each tenant's calls take its own lock, and the pool's bookkeeping
        # (a few dict operations, never I/O with a host) takes ``_pool_lock`` briefly. A slow or
        # hostile host therefore delays only calls of its own tenant.
        self._pool_lock = threading.Lock()
        self._tenant_locks: dict[str, threading.RLock] = {}
        self.layers: dict[str, Any] = {}
        self.hosts_spawned = 0

    # ------------------------------------------------------------- pool
    def _spawn(self, boot: str | None = None) -> _Host:
        self.hosts_spawned += 1
        return _Host(self.limits) if boot is None else _Host(self.limits, boot)

    def _boot_for(self, tenant_id: str) -> str | None:
        """The boot line of a host for this tenant; None = the production one (and a spare may serve).

        Only the breach probe (tests/sandbox/breach_probe.py) overrides this, in its own subclass.
        """
        return None

    def _tenant(self, tenant_id: str) -> threading.RLock:
        with self._pool_lock:
            lock = self._tenant_locks.get(tenant_id)
            if lock is None:
                lock = self._tenant_locks[tenant_id] = threading.RLock()
            return lock

    def _host_for(self, tenant_id: str) -> _Host:
        """The tenant's host (caller holds the tenant's lock); spawns or takes the spare."""
        with self._pool_lock:
            host = self._pool.get(tenant_id)
            if host is not None and host.alive():
                self._pool.move_to_end(tenant_id)
                return host
            self._pool.pop(tenant_id, None)
            victims = self._evict_locked(tenant_id)
            boot = self._boot_for(tenant_id)
            spare = self._spare if boot is None and self._spare is not None and self._spare.alive() else None
            if boot is None:
                self._spare = None
        if host is not None:
            host.kill()
        for old in victims:
            old.kill()
        host = spare if spare is not None else self._spawn(boot)
        host.tenant = tenant_id
        try:
            info = host.wait_ready()
        finally:
            if self.prespawn and boot is None:
                self._refill_spare()
        self.layers = dict(info.get("layers") or {})
        with self._pool_lock:
            self._pool[tenant_id] = host
        return host

    def _evict_locked(self, tenant_id: str) -> list[_Host]:
        """Least recently used hosts to stop to make room (pool lock held); busy tenants are skipped."""
        victims: list[_Host] = []
        for other in list(self._pool):
            if len(self._pool) < self.max_hosts:
                break
            lock = self._tenant_locks.get(other)
            if other == tenant_id or lock is None or not lock.acquire(blocking=False):
                continue  # in use by another thread: it stays; the pool is over size until it is idle
            try:
                victims.append(self._pool.pop(other))
            finally:
                lock.release()
        return victims

    def _refill_spare(self) -> None:
        with self._pool_lock:
            if self._spare is not None and self._spare.alive():
                return
        spare = self._spawn()
        with self._pool_lock:
            if self._spare is None or not self._spare.alive():
                self._spare, spare = spare, None  # type: ignore[assignment]
        if spare is not None:
            spare.kill()

    def _discard(self, tenant_id: str) -> None:
        with self._pool_lock:
            host = self._pool.pop(tenant_id, None)
        if host is not None:
            host.kill()

    def _request(self, tenant_id: str, host: _Host, msg: dict[str, Any], timeout: float, what: str) -> Any:
        try:
            result = host.request(msg, timeout, what)
        except BaseException:
            self._drop_if_dead(tenant_id, host)
            raise
        if host.dead:  # a fatal reply: the host was killed after answering
            self._drop_if_dead(tenant_id, host)
        return result

    def _drop_if_dead(self, tenant_id: str, host: _Host) -> None:
        with self._pool_lock:
            if not host.alive() and self._pool.get(tenant_id) is host:
                self._pool.pop(tenant_id, None)

    def _load_on(
        self, host: _Host, tenant_id: str, instance_id: str, spec: _Spec, state: Any
    ) -> dict[str, Any]:
        sources = {"strategy.py": spec.source}
        if spec.style == "signal_bundle":
            sources = {"entry.py": spec.source, "exit.py": spec.exit_source or ""}
        msg = {
            "cmd": "load",
            "instance_id": instance_id,
            "style": spec.style,
            "sources": sources,
            "config": spec.config,
            "state": state,
            "seed": spec.seed,
            "config_schema": spec.config_schema,
            "budget": self.limits.load_timeout,
        }
        result = self._request(tenant_id, host, msg, self.limits.load_timeout, "load")
        host.loaded[instance_id] = spec.fingerprint
        return result if isinstance(result, dict) else {}

    def _ready(self, tenant_id: str, instance_id: str) -> tuple[_Host, _Spec]:
        spec = self._specs.get((tenant_id, instance_id))
        if spec is None:
            raise SandboxError(ErrorCode.NOT_LOADED, f"instance {instance_id!r} is not loaded")
        host = self._host_for(tenant_id)
        if host.loaded.get(instance_id) != spec.fingerprint:
            self._load_on(host, tenant_id, instance_id, spec, spec.state)
        return host, spec

    def _call(
        self, tenant_id: str, instance_id: str, msg: dict[str, Any], timeout: float, what: str
    ) -> tuple[Any, _Spec]:
        host, spec = self._ready(tenant_id, instance_id)
        msg["instance_id"] = instance_id
        msg["budget"] = timeout
        return self._request(tenant_id, host, msg, timeout, what), spec

    def _call_dict(
        self, tenant_id: str, instance_id: str, msg: dict[str, Any], timeout: float, what: str
    ) -> tuple[dict[str, Any], _Spec]:
        """A call whose result must be an object (hosts are untrusted: anything else is a crash)."""
        result, spec = self._call(tenant_id, instance_id, msg, timeout, what)
        if not isinstance(result, dict):
            raise SandboxError(ErrorCode.HOST_CRASHED, f"the host sent a malformed {what} result")
        return result, spec

    # ------------------------------------------------------------- public API
    def load(
        self,
        tenant_id: str,
        instance_id: str,
        *,
        source: str,
        style: str = "tick",
        exit_source: str | None = None,
        config: dict[str, Any],
        state: dict[str, Any] | None = None,
        seed: int | None = None,
        fingerprint: str = "",
        config_schema: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Compile and start an instance; returns ``{"config_schema", "state", "logs"}``."""
        if style not in ("tick", "signal", "signal_bundle"):
            raise SandboxError(ErrorCode.BAD_REQUEST, f"unknown style {style!r}")
        if style == "signal_bundle" and exit_source is None:
            raise SandboxError(ErrorCode.BAD_REQUEST, "a signal_bundle needs exit_source (exit.py)")
        for text in (source, exit_source or ""):
            if len(text.encode("utf-8", "surrogatepass")) > self.limits.max_source_bytes:
                raise SandboxError(
                    ErrorCode.TOO_LARGE, f"source is larger than {self.limits.max_source_bytes // 1024} KiB"
                )
        with self._tenant(tenant_id):
            self._specs.pop((tenant_id, instance_id), None)
            spec = _Spec(
                source,
                style,
                exit_source,
                dict(config),
                seed,
                fingerprint or f"anon-{time.monotonic_ns()}",
                config_schema,
            )
            host = self._host_for(tenant_id)
            host.loaded.pop(instance_id, None)
            result = self._load_on(host, tenant_id, instance_id, spec, state)
            spec.state = result.get("state")
            spec.schema = result.get("config_schema") or {}
            self._specs[(tenant_id, instance_id)] = spec
            return {"config_schema": spec.schema, "state": spec.state, "logs": result.get("logs", [])}

    def is_loaded(self, tenant_id: str, instance_id: str, fingerprint: str) -> bool:
        spec = self._specs.get((tenant_id, instance_id))
        return spec is not None and spec.fingerprint == fingerprint

    # ``state`` (tick, signal_cycle, render): continue from this persisted state instead of the one the
    # host holds — the instance ran in another process since. Far cheaper than a reload: the code
    # stays compiled and ``init()``/``on_load`` do not run again.

    def tick(
        self,
        tenant_id: str,
        instance_id: str,
        tick: dict[str, Any],
        snapshot: dict[str, Any],
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._tenant(tenant_id):
            msg = {"cmd": "tick", "tick": tick, "snapshot": snapshot, "state": state}
            result, spec = self._call_dict(tenant_id, instance_id, msg, self.limits.tick_timeout, "on_tick")
            spec.state = result["state"]
            return result

    def cycle_many(
        self, tenant_id: str, calls: list[dict[str, Any]]
    ) -> list[dict[str, Any] | SandboxError | None]:
        """Several instances' ticks or signal cycles of one tenant in one round trip to its host.

        ``calls``: ``{"instance_id", "cmd": "tick"|"signal_cycle", "snapshot", "tick" (tick only),
        "state" (optional, as for :meth:`tick`)}``. Returns one entry per call, in order: the
        result (as :meth:`tick` / :meth:`signal_cycle` return it), the call's :class:`SandboxError`,
        or None when the call was not run — its instance is not loaded in the current host, or an
        earlier call of the batch killed the host; the caller makes that call alone (which loads or
        respawns as usual). Each call has its own tick budget, read as the host answers it, so a
        call that overruns fails alone and with its own error, exactly as it would alone.
        """
        out: list[dict[str, Any] | SandboxError | None] = [None] * len(calls)
        with self._tenant(tenant_id):
            host = self._host_for(tenant_id)
            host.wait_ready()
            timeout = self.limits.tick_timeout
            sent: list[tuple[int, _Spec]] = []
            msgs = []
            for n, call in enumerate(calls):
                spec = self._specs.get((tenant_id, call["instance_id"]))
                if spec is None or host.loaded.get(call["instance_id"]) != spec.fingerprint:
                    continue
                msg = {
                    "cmd": call["cmd"],
                    "instance_id": call["instance_id"],
                    "snapshot": call["snapshot"],
                    "state": call.get("state"),
                    "budget": timeout,
                }
                if call["cmd"] == "tick":
                    msg["tick"] = call["tick"]
                msgs.append(msg)
                sent.append((n, spec))
            if not msgs:
                return out
            payload = pickle.dumps({"cmd": "batch", "items": msgs}, protocol=5)
            try:
                host._write(
                    HEADER.pack(len(payload)) + payload, time.monotonic() + timeout + len(payload) / 200e6
                )
            except (TimeoutError, _HostGone):
                host.kill()
                self._drop_if_dead(tenant_id, host)
                return out
            for (n, spec), msg in zip(sent, msgs, strict=True):
                what = "on_tick" if msg["cmd"] == "tick" else "signal cycle"
                try:
                    reply = host._read_reply(
                        time.monotonic() + timeout + 0.05, self.limits.reply_cap(msg["cmd"])
                    )
                except TimeoutError:
                    host.kill()
                    out[n] = SandboxError(
                        ErrorCode.TIMEOUT,
                        f"{what} exceeded its {timeout * 1000:.0f} ms budget; the host was stopped",
                    )
                except _HostGone:
                    out[n] = host._death_error(what)
                except SandboxError as exc:
                    host.kill()
                    out[n] = exc
                else:
                    if reply.get("fatal"):
                        host.kill()
                    result = reply.get("result")
                    if reply.get("ok") is not True:
                        out[n] = SandboxError.from_dict(reply.get("error"))
                    elif not isinstance(result, dict):
                        out[n] = SandboxError(
                            ErrorCode.HOST_CRASHED, f"the host sent a malformed {what} result"
                        )
                    else:
                        spec.state = result["state"]
                        out[n] = result
                if host.dead:
                    break  # the rest were not run (or their answers died with the host)
            self._drop_if_dead(tenant_id, host)
            return out

    def render(self, tenant_id: str, instance_id: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._tenant(tenant_id):
            msg = {"cmd": "render", "state": state}
            result, spec = self._call_dict(tenant_id, instance_id, msg, self.limits.render_timeout, "render")
            if state is not None:
                spec.state = state
            return result

    def signal_cycle(
        self, tenant_id: str, instance_id: str, snapshot: dict[str, Any], state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._tenant(tenant_id):
            msg = {"cmd": "signal_cycle", "snapshot": snapshot, "state": state}
            result, spec = self._call_dict(
                tenant_id, instance_id, msg, self.limits.tick_timeout, "signal cycle"
            )
            spec.state = result["state"]
            return result

    def backtest(
        self,
        tenant_id: str,
        instance_id: str,
        bars: list[dict[str, Any]] | dict[str, list[float]] | dict[str, bytes],
        broker_params: dict[str, Any],
        market: str = "BT",
        packed: bool = False,
    ) -> dict[str, Any]:
        """Run one chunk of bars inside the host; broker state carries over between chunks.

        ``bars``: a list of bar dicts, or columns ts/open/high/low/close/volume as lists of numbers
        or as packed native float64 ``bytes``. Columns travel packed: pickling a million floats
        one by one (and unpickling them in the host) costs more than the whole transfer should.
        ``packed=True`` asks for fills and trades as base64 float64 arrays (see
        :func:`sandbox.backtest.run_backtest`); the caller must decode and check them.
        """
        columns = _packed_columns(bars)
        with self._tenant(tenant_id):
            spec = self._specs.get((tenant_id, instance_id))
            msg = {
                "cmd": "backtest",
                "bars": columns,
                "broker_params": broker_params,
                "broker_state": spec.broker_state if spec else None,
                "history_tail": spec.history_tail if spec else None,
                "market": market,
                "packed": packed,
            }
            result, spec = self._call_dict(
                tenant_id, instance_id, msg, self.limits.backtest_timeout, "backtest chunk"
            )
            spec.history_tail = _history_tail(spec.history_tail, columns)
            spec.broker_state = result.get("broker")
            spec.state = result.get("state", spec.state)
            return result

    def backtest_stream(
        self,
        tenant_id: str,
        instance_id: str,
        chunks: Iterable[tuple[dict[str, bytes] | dict[str, list[float]], dict[str, Any]]],
        market: str = "BT",
        packed: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """:meth:`backtest` over a sequence of `(bars, broker_params)` chunks (the parameters may
        change from chunk to chunk, e.g. a market's session windows), one chunk ahead: the host runs chunk k+1
        while the caller handles chunk k's result (and fetches the bars after it). Results come in
        order, each what :meth:`backtest` returns. The tenant's lock is held until the stream ends.

        A chunk still in flight when the stream ends early (the caller stops iterating, or a chunk
        failed) would keep the host busy for nobody: the host is stopped, and the next call spawns
        a fresh one. The broker state each request carries is only read by a host that has none
        (a fresh load), which cannot happen within one stream: a host that dies ends the stream.
        """
        with self._tenant(tenant_id):
            host, spec = self._ready(tenant_id, instance_id)
            timeout = self.limits.backtest_timeout
            sent = received = 0

            def requests() -> Iterator[dict[str, Any]]:
                nonlocal sent
                for bars, broker_params in chunks:
                    columns = _packed_columns(bars)
                    msg = {
                        "cmd": "backtest",
                        "instance_id": instance_id,
                        "budget": timeout,
                        "bars": columns,
                        "broker_params": broker_params,
                        "broker_state": spec.broker_state,
                        "history_tail": spec.history_tail,
                        "market": market,
                        "packed": packed,
                    }
                    spec.history_tail = _history_tail(spec.history_tail, columns)
                    sent += 1
                    yield msg

            try:
                for result in host.pipelined(requests(), timeout, "backtest chunk"):
                    received += 1
                    if not isinstance(result, dict):
                        raise SandboxError(
                            ErrorCode.HOST_CRASHED, "the host sent a malformed backtest chunk result"
                        )
                    spec.broker_state = result.get("broker")
                    spec.state = result.get("state", spec.state)
                    yield result
            except BaseException:
                self._drop_if_dead(tenant_id, host)
                raise
            finally:
                if sent > received and host.alive():
                    self._discard(tenant_id)

    def update_config(self, tenant_id: str, instance_id: str, config: dict[str, Any]) -> None:
        with self._tenant(tenant_id):
            _, spec = self._call(
                tenant_id,
                instance_id,
                {"cmd": "update_config", "config": config},
                self.limits.tick_timeout,
                "config update",
            )
            spec.config = {**spec.config, **config}

    def unload(self, tenant_id: str, instance_id: str) -> None:
        with self._tenant(tenant_id):
            spec = self._specs.pop((tenant_id, instance_id), None)
            host = self._pool.get(tenant_id)
            if spec is None or host is None or not host.alive():
                return
            host.loaded.pop(instance_id, None)
            try:
                self._request(tenant_id, host, {"cmd": "unload", "instance_id": instance_id}, 1.0, "unload")
            except SandboxError:
                pass

    def host_info(self, tenant_id: str) -> dict[str, Any]:
        """Boot report of the tenant's host (pid, layers, startup time); spawns one if needed."""
        with self._tenant(tenant_id):
            host = self._host_for(tenant_id)
            return dict(host.wait_ready())

    def close(self) -> None:
        with self._pool_lock:
            hosts = list(self._pool.values())
            if self._spare is not None:
                hosts.append(self._spare)
            self._pool.clear()
            self._spare = None
            self._specs.clear()
        for host in hosts:
            host.kill()

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def _packed_columns(
    bars: list[dict[str, Any]] | dict[str, list[float]] | dict[str, bytes],
) -> dict[str, bytes]:
    """Bar columns as packed float64 bytes. A column with gaps is left out (the host falls back to
    the close for open/high/low and to 0 for volume; ts and close are required)."""
    if isinstance(bars, list):
        raw: dict[str, Any] = {k: [b.get(k) for b in bars] for k in _BAR_COLUMNS}
    elif isinstance(bars, dict):
        raw = {k: bars[k] for k in _BAR_COLUMNS if k in bars}
    else:
        raise SandboxError(ErrorCode.BAD_REQUEST, "bars must be a list of bar dicts or a dict of columns")
    out: dict[str, bytes] = {}
    for k, col in raw.items():
        if type(col) is bytes:
            out[k] = col
            continue
        if col is None or None in col:
            continue
        try:
            out[k] = array("d", col).tobytes()
        except (TypeError, ValueError, OverflowError):
            raise SandboxError(ErrorCode.BAD_REQUEST, f"bar column {k} must hold numbers") from None
    return out


def _history_tail(tail: dict[str, bytes] | None, columns: dict[str, bytes]) -> dict[str, bytes]:
    """The last MAX_HISTORY_BARS bars of ``tail`` followed by ``columns`` (missing open/high/low
    stand in as the close and a missing volume as zeros, as the host does)."""
    close = columns.get("close", b"")
    keep = MAX_HISTORY_BARS * 8
    out: dict[str, bytes] = {}
    for k in _BAR_COLUMNS:
        col = columns.get(k)
        if col is None or len(col) != len(close):
            col = bytes(len(close)) if k == "volume" else close
        joined = (tail or {}).get(k, b"") + col
        out[k] = joined[-keep:] if len(joined) > keep else joined
    return out


@atexit.register
def _kill_all_hosts() -> None:
    for host in list(_LIVE_HOSTS):
        host.kill()
