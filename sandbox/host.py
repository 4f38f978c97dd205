"""The sandbox host process: ``python -I -S -B -c <boot> <paths> <limits>``, started by the client.

It imports everything it will ever need, confines itself (see :mod:`sandbox.confine`), reports
which layers are active, then serves length-prefixed requests on stdin/stdout: ``load``, ``tick``,
``render``, ``signal_cycle``, ``backtest``, ``update_config``, ``unload``, ``validate``, ``ping``.
A host serves exactly one tenant (the client guarantees it); it never opens files or sockets.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import sys
import time
from typing import Any


def boot_line(then: str) -> str:
    """A host's ``-c`` program: search path, then the keeper split (:mod:`sandbox.keeper`, run from its
    file so that the keeper never imports the package), then ``then`` in the host, with ``ns``."""
    return (
        "import sys,json;sys.path[:0]=json.loads(sys.argv[1]);k={'__name__':'keeper'};"
        "exec(compile(open(sys.path[0]+'/sandbox/keeper.py','rb').read(),'keeper.py','exec'),k);"
        "ns=k['split']();del k;" + then
    )


BOOT = boot_line("from sandbox.host import main;main(ns)")


def _preload() -> None:
    """Import lazily-imported modules now: after seccomp no file can be opened."""
    import _strptime  # type: ignore[import-not-found]  # noqa: F401 - datetime.strptime (CPython-private, no stub)
    import encodings.ascii  # noqa: F401
    import encodings.latin_1  # noqa: F401
    import encodings.utf_8  # noqa: F401

    import sandbox.analysis  # noqa: F401
    import sandbox.backtest  # noqa: F401
    import sandbox.runtime  # noqa: F401
    from sandbox.limits import Limits
    from sandbox.runtime import Instance

    warm = (
        "from sandbox.sdk import Strategy\nimport math, statistics, datetime, decimal, fractions, itertools\n"
        "import functools, collections, heapq, bisect, random, re, operator\n"
        "class W(Strategy):\n    def init(self):\n        return {'x': f'{1.5:.2f}' + '{}'.format(2)}\n"
        "    def on_tick(self, tick):\n        self.state['n'] = self.state.get('n', 0) + 1\n"
        "        datetime.datetime.strptime('2024-01-01', '%Y-%m-%d')\n        re.compile('a+b').match('aab')\n"
        "        statistics.mean([1, 2]); decimal.Decimal('1.5') + 1\n"
    )
    inst = Instance(
        "warm", style="tick", sources={"strategy.py": warm}, config={}, state=None, seed=1, limits=Limits()
    )
    inst.tick(
        {"market": "X", "ts": 1.0, "price": 1.0, "bid": 1.0, "ask": 1.0, "volume": 1.0}, {"mode": "observe"}
    )
    inst.render()
    sandbox.analysis.analyze(warm, "tick", "strategy.py", Limits())


class Host:
    """Request dispatcher. Instances are keyed by instance id."""

    def __init__(self, limits: Any) -> None:
        from sandbox.runtime import Instance

        self.limits = limits
        self.instances: dict[str, Instance] = {}
        self.load_args: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.cpu_hard = 24 * 3600
        # Last arming of RLIMIT_CPU: (budget, CPU seconds used then, monotonic time then, soft limit).
        self._armed: tuple[float, float, float, int] | None = None

    def _arm_cpu(self, budget: float) -> None:
        """Keep the soft CPU limit between ``used + budget + 1`` and ``used + budget + 2`` seconds.

        Re-arming costs two syscalls (getrusage + prlimit); on the tick path they are skipped while
        the previous arming still guarantees that window. The host is single-threaded, so its CPU
        time grows no faster than the monotonic clock: ``used_then + (now - then)`` bounds the CPU
        used now from above, which keeps the lower edge; the soft limit never moves up without a
        fresh measurement, which keeps the upper edge.
        """
        now = time.monotonic()
        armed = self._armed
        if armed is not None:
            a_budget, a_used, a_at, a_soft = armed
            if a_budget == budget and a_used + (now - a_at) + budget + 1 <= a_soft:
                return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        used = usage.ru_utime + usage.ru_stime
        soft = min(int(used + budget) + 2, self.cpu_hard)
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, self.cpu_hard))
        except (ValueError, OSError):
            self._armed = None
            return
        self._armed = (budget, used, now, soft)

    def _instance(self, instance_id: str) -> Any:
        from sandbox.errors import ErrorCode, SandboxError
        from sandbox.runtime import Instance

        inst = self.instances.get(instance_id)
        if inst is None:
            raise SandboxError(ErrorCode.NOT_LOADED, f"instance {instance_id!r} is not loaded in this host")
        if instance_id in self.dirty:  # restore the last good state after a failed call
            args = dict(self.load_args[instance_id])
            args["state"] = json.loads(inst.good_state_json)
            args["config"] = dict(inst.config)
            broker = inst.backtest
            del inst
            self.instances.pop(instance_id, None)
            _collect()  # the failed incarnation's cycles go now, inside this call's budget
            inst = self._build(instance_id, args)
            inst.backtest = broker
            self.instances[instance_id] = inst
            self.dirty.discard(instance_id)
        assert isinstance(inst, Instance)
        return inst

    def _build(self, instance_id: str, args: dict[str, Any]) -> Any:
        from sandbox.runtime import Instance

        inst = Instance(
            instance_id,
            style=args["style"],
            sources=args["sources"],
            config=args["config"],
            state=args.get("state"),
            seed=args.get("seed"),
            limits=self.limits,
            config_schema=args.get("config_schema"),
        )
        return inst

    def handle(self, msg: dict[str, Any]) -> Any:
        from sandbox.analysis import analyze
        from sandbox.backtest import run_backtest
        from sandbox.errors import ErrorCode, SandboxError

        cmd = msg.get("cmd")
        iid = msg.get("instance_id", "")
        self._arm_cpu(float(msg.get("budget", 1.0)))
        if cmd == "ping":
            return {"pong": True}
        if cmd == "validate":
            return analyze(
                msg["source"], msg.get("style", "tick"), msg.get("filename", "strategy.py"), self.limits
            )
        if cmd == "load":
            args = {k: msg.get(k) for k in ("style", "sources", "config", "state", "seed", "config_schema")}
            if self.instances.pop(iid, None) is not None:
                _collect()
            self.dirty.discard(iid)
            inst = self._build(iid, args)
            self.instances[iid] = inst
            self.load_args[iid] = args
            return {
                "config_schema": inst.schema,
                "state": json.loads(inst.good_state_json),
                "logs": inst.load_logs,
            }
        if cmd == "unload":
            self.instances.pop(iid, None)
            self.load_args.pop(iid, None)
            self.dirty.discard(iid)
            _collect()
            return None
        inst = self._instance(iid)
        try:
            if msg.get("state") is not None and cmd in ("tick", "signal_cycle", "render"):
                inst.restore_state(msg["state"])
            if cmd == "tick":
                return inst.tick(msg["tick"], msg["snapshot"], raw_state=True)
            if cmd == "render":
                return inst.render()
            if cmd == "signal_cycle":
                return inst.signal_cycle(msg["snapshot"], raw_state=True)
            if cmd == "update_config":
                inst.update_config(msg["config"])
                self.load_args[iid]["config"] = dict(inst.config)
                return None
            if cmd == "backtest":
                return run_backtest(
                    inst,
                    msg["bars"],
                    msg.get("broker_params") or {},
                    msg.get("broker_state"),
                    msg.get("market") or "BT",
                    packed=msg.get("packed") is True,
                    history_tail=msg.get("history_tail"),
                )
        except BaseException:
            self.dirty.add(iid)
            raise
        raise SandboxError(ErrorCode.BAD_REQUEST, f"unknown command {cmd!r}")

    def serve(self, rfd: int, wfd: int) -> None:
        from sandbox.protocol import FrameReader, write_frame

        reader = FrameReader(rfd)
        while True:
            try:
                raw = reader.read(1 << 31)
            except EOFError:
                return
            try:
                msg = pickle.loads(raw)  # noqa: S301 - from our trusted client
            except Exception:  # noqa: BLE001 - answered as a host error below
                msg = None
            del raw
            # A batch is a list of requests answered one frame each, in order, as each completes:
            # the client reads them with a deadline each, so one slow call is still told apart.
            for one in (msg.get("items") or []) if type(msg) is dict and msg.get("cmd") == "batch" else [msg]:
                data, fatal = self._answer(one)
                write_frame(wfd, data)
                if fatal:
                    os._exit(3)

    def _answer(self, msg: Any) -> tuple[bytes, bool]:
        """Handle one request; returns the reply frame's payload and whether the host must exit."""
        from sandbox.errors import ErrorCode, SandboxError

        fatal = False
        try:
            if type(msg) is not dict:
                raise SandboxError(ErrorCode.BAD_REQUEST, "malformed request")
            reply: dict[str, Any] = {"ok": True, "result": self.handle(msg)}
        except SandboxError as exc:
            reply = {"ok": False, "error": exc.to_dict()}
            fatal = exc.code == ErrorCode.MEMORY_LIMIT
        except MemoryError:
            reply = {
                "ok": False,
                "error": SandboxError(ErrorCode.MEMORY_LIMIT, "the host ran out of memory").to_dict(),
            }
            fatal = True
        except RecursionError:
            reply = {
                "ok": False,
                "error": SandboxError(
                    ErrorCode.RUNTIME_ERROR, "RecursionError: maximum recursion depth exceeded"
                ).to_dict(),
            }
        except Exception as exc:  # noqa: BLE001 - a host bug must still answer
            reply = {
                "ok": False,
                "error": SandboxError(
                    ErrorCode.HOST_CRASHED, f"host error: {type(exc).__name__}: {exc}"[:500]
                ).to_dict(),
            }
        reply["fatal"] = fatal
        try:
            data = _encode_reply(reply)
        except (ValueError, TypeError, RecursionError) as exc:
            data = json.dumps(
                {
                    "ok": False,
                    "fatal": False,
                    "error": SandboxError(ErrorCode.BAD_OUTPUT, f"result is not JSON: {exc}"[:300]).to_dict(),
                }
            ).encode()
        except MemoryError:
            data = b'{"ok":false,"fatal":true,"error":{"code":"MEMORY_LIMIT","message":"the host ran out of memory","line":null,"traceback":null}}'
            fatal = True
        if len(data) > self.limits.max_message_bytes:
            data = json.dumps(
                {
                    "ok": False,
                    "fatal": False,
                    "error": SandboxError(
                        ErrorCode.OUTPUT_LIMIT, f"result of {len(data)} bytes exceeds the message limit"
                    ).to_dict(),
                }
            ).encode()
        return data, fatal


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # built once, not per reply


def _encode_reply(reply: dict[str, Any]) -> bytes:
    """Strict JSON of a reply; a state already checked by ``check_json`` is spliced in as text."""
    from sandbox.runtime import RawJSON

    result = reply.get("result")
    if type(result) is dict and type(result.get("state")) is RawJSON:
        rest = dict(result)
        state: str = rest.pop("state")
        # Put "result" last so the text ends with the two closing braces of result and reply.
        head = _ENCODER.encode({"ok": reply["ok"], "fatal": reply["fatal"], "result": rest})
        sep = "," if rest else ""
        return (head[:-2] + sep + '"state":' + state + "}}").encode()
    return _ENCODER.encode(reply).encode()


def _collect() -> None:
    """Collect an unloaded instance's cyclic garbage now, inside the request's budget.

    User code cannot run in finalisers (the policy refuses ``__del__`` and yields inside
    ``try``/``with``), so this frees memory; it does not run anything of the user's.
    """
    import gc

    gc.collect()


def main(namespaces: tuple[bool, str] = (False, "no keeper split"), hook: Any = None) -> None:
    """Boot a host: ``argv[2]`` limits, ``argv[3]`` (optional) ``{"uid", "lease_fd"}`` from the client.

    ``namespaces`` is the keeper split's outcome (:mod:`sandbox.keeper`): when entered, this
    process is pid 1 of its own PID namespace and its parent, the keeper, holds the uid lease. ``hook`` is for
    the breach probe only (tests/sandbox/breach_probe.py passes it from its own boot line; the
    production boot line :data:`BOOT` never does, and no request can reach it): it is called with
    ``(host, rfd, wfd)`` after the ready report, every layer applied, before serving.
    """
    started = time.perf_counter()
    from sandbox.confine import confine, set_pdeathsig
    from sandbox.limits import Limits
    from sandbox.protocol import write_frame

    limits = Limits.from_dict(json.loads(sys.argv[2]))
    lease: dict[str, Any] = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    lease_fd = lease.get("lease_fd")
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    if namespaces[0]:
        set_pdeathsig()  # die with the keeper (single-threaded, unlike a client); confine() re-arms it
    root_dir = os.getcwd()  # the client's empty directory: our mount point for the empty root
    if type(lease_fd) is int and namespaces[0]:
        os.close(lease_fd)  # the keeper holds the lease (without one, the host keeps it open itself)
    outer_pid = int(os.readlink("/proc/self")) if namespaces[0] else os.getpid()
    _preload()
    import gc

    gc.collect()
    gc.freeze()  # boot objects never need scanning again: shorter GC pauses on the tick path
    host = Host(limits)
    uid = lease.get("uid")
    layers = confine(
        limits.memory_bytes,
        limits.open_files,
        10,
        uid=uid if type(uid) is int else None,
        namespaces=namespaces,
        root_dir=root_dir,
    )
    host.cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    sys.setrecursionlimit(1000)
    ready = {
        "ok": True,
        "result": {
            "pid": outer_pid,
            "ns_pid": os.getpid(),
            "layers": layers,
            "boot_seconds": time.perf_counter() - started,
            "uid": os.getuid(),
        },
    }
    write_frame(wfd, json.dumps(ready).encode())
    if hook is not None:
        hook(host, rfd, wfd)
    host.serve(rfd, wfd)
    os._exit(0)  # no interpreter teardown: it would make system calls the filter refuses
