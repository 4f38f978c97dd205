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

BOOT = "import sys,json;sys.path[:0]=json.loads(sys.argv[1]);from sandbox.host import main;main()"


def _preload() -> None:
    """Import lazily-imported modules now: after seccomp no file can be opened."""
    import _strptime  # noqa: F401 - datetime.strptime
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
    inst = Instance("warm", style="tick", sources={"strategy.py": warm}, config={}, state=None, seed=1, limits=Limits())
    inst.tick({"market": "X", "ts": 1.0, "price": 1.0, "bid": 1.0, "ask": 1.0, "volume": 1.0}, {"mode": "observe"})
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

    def _arm_cpu(self, budget: float) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime + budget) + 2
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (min(soft, self.cpu_hard), self.cpu_hard))
        except (ValueError, OSError):
            pass

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
            inst = self._build(instance_id, args)
            inst.backtest = broker
            self.instances[instance_id] = inst
            self.dirty.discard(instance_id)
        assert isinstance(inst, Instance)
        return inst

    def _build(self, instance_id: str, args: dict[str, Any]) -> Any:
        from sandbox.runtime import Instance

        inst = Instance(instance_id, style=args["style"], sources=args["sources"], config=args["config"],
                        state=args.get("state"), seed=args.get("seed"), limits=self.limits,
                        config_schema=args.get("config_schema"))
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
            return analyze(msg["source"], msg.get("style", "tick"), msg.get("filename", "strategy.py"), self.limits)
        if cmd == "load":
            args = {k: msg.get(k) for k in ("style", "sources", "config", "state", "seed", "config_schema")}
            self.instances.pop(iid, None)
            self.dirty.discard(iid)
            inst = self._build(iid, args)
            self.instances[iid] = inst
            self.load_args[iid] = args
            return {"config_schema": inst.schema, "state": json.loads(inst.good_state_json), "logs": inst.load_logs}
        if cmd == "unload":
            self.instances.pop(iid, None)
            self.load_args.pop(iid, None)
            self.dirty.discard(iid)
            return None
        inst = self._instance(iid)
        try:
            if cmd == "tick":
                return inst.tick(msg["tick"], msg["snapshot"])
            if cmd == "render":
                return inst.render()
            if cmd == "signal_cycle":
                return inst.signal_cycle(msg["snapshot"])
            if cmd == "update_config":
                inst.update_config(msg["config"])
                self.load_args[iid]["config"] = dict(inst.config)
                return None
            if cmd == "backtest":
                return run_backtest(inst, msg["bars"], msg.get("broker_params") or {}, msg.get("broker_state"),
                                    msg.get("market") or "BT")
        except BaseException:
            self.dirty.add(iid)
            raise
        raise SandboxError(ErrorCode.BAD_REQUEST, f"unknown command {cmd!r}")

    def serve(self, rfd: int, wfd: int) -> None:
        from sandbox.errors import ErrorCode, SandboxError
        from sandbox.protocol import read_frame, write_frame

        while True:
            try:
                raw = read_frame(rfd, 1 << 31)
            except EOFError:
                return
            fatal = False
            try:
                msg = pickle.loads(raw)  # noqa: S301 - from our trusted client
                del raw
                reply: dict[str, Any] = {"ok": True, "result": self.handle(msg)}
            except SandboxError as exc:
                reply = {"ok": False, "error": exc.to_dict()}
                fatal = exc.code == ErrorCode.MEMORY_LIMIT
            except MemoryError:
                reply = {"ok": False, "error": SandboxError(ErrorCode.MEMORY_LIMIT, "the host ran out of memory").to_dict()}
                fatal = True
            except RecursionError:
                reply = {"ok": False, "error": SandboxError(ErrorCode.RUNTIME_ERROR, "RecursionError: maximum recursion depth exceeded").to_dict()}
            except Exception as exc:  # noqa: BLE001 - a host bug must still answer
                reply = {"ok": False, "error": SandboxError(ErrorCode.HOST_CRASHED, f"host error: {type(exc).__name__}: {exc}"[:500]).to_dict()}
            reply["fatal"] = fatal
            try:
                data = json.dumps(reply, allow_nan=False, separators=(",", ":")).encode()
            except (ValueError, TypeError, RecursionError) as exc:
                data = json.dumps({"ok": False, "fatal": False, "error": SandboxError(
                    ErrorCode.BAD_OUTPUT, f"result is not JSON: {exc}"[:300]).to_dict()}).encode()
            except MemoryError:
                data = b'{"ok":false,"fatal":true,"error":{"code":"MEMORY_LIMIT","message":"the host ran out of memory","line":null,"traceback":null}}'
                fatal = True
            if len(data) > self.limits.max_message_bytes:
                data = json.dumps({"ok": False, "fatal": False, "error": SandboxError(
                    ErrorCode.OUTPUT_LIMIT, f"result of {len(data)} bytes exceeds the message limit").to_dict()}).encode()
            write_frame(wfd, data)
            if fatal:
                os._exit(3)


def main() -> None:
    started = time.perf_counter()
    from sandbox.confine import confine
    from sandbox.limits import Limits
    from sandbox.protocol import write_frame

    limits = Limits.from_dict(json.loads(sys.argv[2]))
    rfd, wfd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    _preload()
    import gc

    gc.collect()
    gc.freeze()  # boot objects never need scanning again: shorter GC pauses on the tick path
    host = Host(limits)
    layers = confine(limits.memory_bytes, limits.open_files, 10)
    host.cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    sys.setrecursionlimit(1000)
    ready = {"ok": True, "result": {"pid": os.getpid(), "layers": layers, "boot_seconds": time.perf_counter() - started,
                                    "uid": os.getuid()}}
    write_frame(wfd, json.dumps(ready).encode())
    host.serve(rfd, wfd)
