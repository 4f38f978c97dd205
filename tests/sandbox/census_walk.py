"""The walker behind the attack-surface census (tests/sandbox/test_sandbox_census.py).

It starts from everything user code is handed -- the offered builtins, every module stand-in, SDK
classes and instances, ticks, contexts, receipts, signals, positions, generators, typing names and
the exceptions trusted code raises into user code -- and follows every attribute name the policy
lets user code read (``attribute_name_problem`` is None; ``format``/``format_map``/``obj`` through
the runtime's own ``_getattr_`` guard), container items and mapping values.
"""

from __future__ import annotations

import builtins
import functools
import operator
import string
import types
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox import sdk
from sandbox.backtest import BacktestContext, PaperBroker
from sandbox.context import CallRecord, ContextRevoked, SignalContext, TickContext, make_position
from sandbox.limits import Limits
from sandbox.policy import (
    ALLOWED_IMPORTS,
    GUARDED_ATTRIBUTES,
    HostFunction,
    PolicyViolation,
    Runtime,
    attribute_name_problem,
)
from sandbox.runtime import Instance, make_tick

PLAIN = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis), type(NotImplemented))
DESCRIPTORS = (
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MethodWrapperType,
    property,
    staticmethod,
    classmethod,
    functools.cached_property,
    type(sdk.Tick.market),  # namedtuple's field getter
)
C_CALLABLES = (types.BuiltinFunctionType, types.BuiltinMethodType)

# Callables that read or write attributes by a name given as data, or reach str.format's field
# traversal, or evaluate code: never reachable, reviewed or not.
DENIED: dict[int, str] = {
    id(o): n
    for n, o in {
        "builtins.getattr": builtins.getattr,
        "builtins.setattr": builtins.setattr,
        "builtins.delattr": builtins.delattr,
        "builtins.hasattr": builtins.hasattr,
        "builtins.vars": builtins.vars,
        "builtins.dir": builtins.dir,
        "builtins.type": type,
        "builtins.eval": builtins.eval,
        "builtins.exec": builtins.exec,
        "builtins.compile": builtins.compile,
        "builtins.open": builtins.open,
        "builtins.globals": builtins.globals,
        "builtins.locals": builtins.locals,
        "builtins.__import__": builtins.__import__,
        "builtins.breakpoint": builtins.breakpoint,
        "operator.attrgetter": operator.attrgetter,
        "operator.methodcaller": operator.methodcaller,
        "functools.update_wrapper": functools.update_wrapper,
        "functools.wraps": functools.wraps,
        "functools.total_ordering": functools.total_ordering,
        "string.Formatter": string.Formatter,
        "str.format": str.format,
        "str.format_map": str.format_map,
        "object.__getattribute__": object.__getattribute__,
        "object.__setattr__": object.__setattr__,
        "object.__delattr__": object.__delattr__,
        "type.__setattr__": type.__setattr__,
    }.items()
}

MUTABLE_CONTAINERS = (dict, list, set, bytearray, deque)


@dataclass
class Finding:
    path: str
    problem: str


@dataclass
class Census:
    """What one walk saw: a key per reviewed-kind object, paths of everything, problems found."""

    rt: Runtime
    keys: dict[str, str] = field(default_factory=dict)  # review key -> first path seen
    by_path: dict[str, Any] = field(default_factory=dict)
    problems: list[Finding] = field(default_factory=list)


def review_key(obj: Any) -> str | None:
    """The allow-list key of an object that needs a review; None for plain data and descriptors."""
    if isinstance(obj, HostFunction):
        return f"host:{obj._sb_label}"  # noqa: SLF001
    if isinstance(obj, type):
        return f"type:{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.FunctionType):
        return f"function:{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, types.MethodType):
        return "method:" + (review_key(obj.__func__) or "?")
    if isinstance(obj, C_CALLABLES):
        owner = obj.__self__
        if owner is None or isinstance(owner, types.ModuleType):
            return f"builtin:{obj.__module__}.{obj.__qualname__}"
        return None  # a C method bound to a reviewed type or value (int.from_bytes): covered by its review
    if type(obj) in PLAIN or isinstance(obj, DESCRIPTORS):
        return None
    if type(obj) in (tuple, frozenset, list, set, dict, types.MappingProxyType, deque):
        return None
    return f"instance:{type(obj).__module__}.{type(obj).__qualname__}"


def _names(obj: Any) -> list[str]:
    try:
        names = dir(obj)
    except Exception:  # noqa: BLE001 - an object without a usable dir() has nothing more to walk
        return []
    return sorted(n for n in names if attribute_name_problem(n) is None)


def walk(
    roots: dict[str, Any], rt: Runtime, guard: Any, write_guard: Any, max_nodes: int = 200_000
) -> Census:
    census = Census(rt)
    seen: set[int] = set()
    queue: deque[tuple[str, Any]] = deque(roots.items())
    user_globals = [id(g) for g in rt.module_globals]
    while queue and len(seen) < max_nodes:
        path, obj = queue.popleft()
        census.by_path.setdefault(path, obj)
        if id(obj) in seen or type(obj) in PLAIN:  # exact: an int subclass (re.RegexFlag) is walked
            continue
        seen.add(id(obj))
        if id(obj) in DENIED:
            census.problems.append(Finding(path, f"reaches {DENIED[id(obj)]}"))
            continue
        if isinstance(obj, types.ModuleType):
            census.problems.append(Finding(path, f"is the real module {obj.__name__}"))
            continue
        func = obj.__func__ if isinstance(obj, types.MethodType) else obj
        if isinstance(func, types.FunctionType) and id(func.__globals__) in user_globals:
            continue  # the user's own function or method
        if isinstance(obj, type) and issubclass(obj, str) and obj is not str:
            census.problems.append(
                Finding(path, f"is {obj.__qualname__}, a str subclass: its class-level format is unguarded")
            )
        key = None if rt.is_user_object(obj) else review_key(obj)
        if key is not None:
            census.keys.setdefault(key, path)
            if key.startswith(("type:", "instance:", "function:")) and not rt.is_user_object(obj):
                try:
                    write_guard(obj)
                except PolicyViolation:
                    pass
                else:
                    census.problems.append(
                        Finding(path, "can be modified by user code (the write guard lets it through)")
                    )
        if isinstance(obj, DESCRIPTORS) or isinstance(obj, (types.MethodType, *C_CALLABLES, HostFunction)):
            continue  # inert, or a call target whose review covers it
        if isinstance(obj, (tuple, frozenset, list, set, deque)):
            for index, item in enumerate(obj):
                queue.append((f"{path}[{index}]", item))
            if type(obj) in (tuple, frozenset, list, set, deque):
                continue  # a subclass (sdk.Tick) also has attributes to walk
        if isinstance(obj, (dict, types.MappingProxyType)):
            for k, item in obj.items():
                if path == "builtins" and attribute_name_problem(k) is not None:
                    continue  # "_"-names (__import__, __build_class__) cannot be named by user code
                queue.append((f"{path}[{k!r}]", item))
            if type(obj) in (dict, types.MappingProxyType):
                continue
        for name in _names(obj):
            try:
                value = guard(obj, name) if name in GUARDED_ATTRIBUTES else getattr(obj, name)
            except (
                PolicyViolation,
                AttributeError,
                ContextRevoked,
                TypeError,
                ValueError,
                NotImplementedError,
            ):
                continue
            queue.append((f"{path}.{name}", value))
    if queue:
        census.problems.append(
            Finding("<walk>", f"more than {max_nodes} objects reachable: the census is incomplete")
        )
    return census


SNAPSHOT = {
    "mode": "active",
    "now": 1.0,
    "order_id_prefix": "inst",
    "quote": {"market": "X", "price": 1.0, "bid": 1.0, "ask": 1.0, "ts": 1.0},
    "orders": [{"client_order_id": "a", "side": "buy", "qty": 1.0}],
    "position": {"market": "X", "qty": 1.0},
    "positions": [{"position_id": "p", "market": "X", "side": "long", "qty": 1.0}],
    "balance": "10",
}

USER = "from sandbox.sdk import Strategy\n\nclass U(Strategy):\n    def on_tick(self, tick):\n        pass\n"


def roots_for(seed: int) -> tuple[dict[str, Any], Runtime, Any, Any]:
    """Everything one loaded instance's code can be handed, with its runtime and attribute guard."""
    inst = Instance(
        f"census-{seed}",
        style="tick",
        sources={"strategy.py": USER},
        config={},
        state=None,
        seed=seed,
        limits=Limits(),
    )
    rt = inst.rt
    g = inst.globals["strategy.py"]
    importer = g["__builtins__"]["__import__"]
    roots: dict[str, Any] = {"builtins": dict(g["__builtins__"])}
    for name in sorted(ALLOWED_IMPORTS):
        roots[f"import {name}"] = importer(name, fromlist=("*",))
    roots["import sandbox"] = importer("sandbox")
    rec = CallRecord(Limits())
    tick_ctx = TickContext(rec, SNAPSHOT, price=1.0)
    signal_ctx = SignalContext(rec, SNAPSHOT, inst.config, {}, (1.0,))
    broker = PaperBroker({"starting_balance": 100.0})
    bt_ctx = BacktestContext(broker, rec, "X")
    roots.update(
        {
            "self": inst.obj,
            "tick": make_tick({"market": "X", "ts": 1.0, "price": 1.0}),
            "context": tick_ctx,
            "receipt": tick_ctx.place_order("buy", 1),
            "rejected receipt": tick_ctx.place_order("sideways", 1),
            "signal ctx": signal_ctx,
            "signal ctx positions": signal_ctx.get_positions(),
            "backtest ctx": bt_ctx,
            "backtest receipt": bt_ctx.place_order("buy", 1),
            "position": make_position(SNAPSHOT["positions"][0]),
            "entry signal": sdk.EntrySignal("X"),
            "exit signal": sdk.ExitSignal("p"),
            "generator": roots["import random"].Random(seed),
            "typing subscript": roots["import typing"].List[int],
            "bound format": g["_getattr_"]("x", "format"),
            "wraps result": roots["import functools"].wraps(lambda: None),
            "namedtuple class": roots["import collections"].namedtuple("P", "x y"),
            "policy violation": rt.violation("x"),
            "revoked": ContextRevoked("x"),
            "module write error": _raised(lambda: setattr(roots["import math"], "x", 1)),
            "signal ctx history": signal_ctx.history,
            **{
                f"indicator {name}": cls(*args)
                for name, cls, args in (
                    ("SMA", roots["import sandbox.indicators"].SMA, (2,)),
                    ("EMA", roots["import sandbox.indicators"].EMA, (2,)),
                    ("RSI", roots["import sandbox.indicators"].RSI, (2,)),
                    ("ATR", roots["import sandbox.indicators"].ATR, (2,)),
                    ("Bollinger", roots["import sandbox.indicators"].Bollinger, (2, 1.0)),
                    ("RollingMax", roots["import sandbox.indicators"].RollingMax, (2,)),
                    ("RollingMin", roots["import sandbox.indicators"].RollingMin, (2,)),
                )
            },
        }
    )
    rt.violations.clear()
    return roots, rt, g["_getattr_"], g["_write_"]


def _raised(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - we want the exception object itself
        return exc
    raise AssertionError("expected an exception")
