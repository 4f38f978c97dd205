"""The attack-surface census: everything user code can reach is plain data or reviewed.

The walk (census_walk.py) starts from everything a loaded instance's code is handed and follows
every attribute name the policy lets user code read. It fails on

* a real module, or a callable that reads/writes attributes by a name given as data, or reaches
  ``str.format`` traversal, or evaluates code (``census_walk.DENIED``) -- reviewed or not;
* a subclass of ``str`` (its class-level ``format`` would be unguarded);
* a type, instance or Python function (with ``__globals__``) the write guard lets user code modify;
* anything needing a review (types, functions, host callables, host objects) that is not on the
  reviewed allow-list (census_reviewed.py), and a listed key that is no longer reachable;
* a non-value object shared between two instances (the same object reached by the same path).

Adding a module, a module name, an SDK member or a builtin therefore fails this test until the
addition is reviewed and listed.
"""

from __future__ import annotations

import datetime
import operator
import re
import types
from decimal import Decimal
from fractions import Fraction

import pytest
from census_reviewed import REASONS, REVIEWED
from census_walk import C_CALLABLES, DESCRIPTORS, PLAIN, Census, roots_for, walk

from sandbox import sdk
from sandbox.policy import GUARDED_ATTRIBUTES, SUBCLASSABLE

# Objects that may be the very same object in two instances: immutable values (write-guarded,
# without mutating methods) besides types, descriptors, C functions and trusted methods.
SHARED_VALUES = (
    datetime.date,
    datetime.time,
    datetime.timedelta,
    datetime.timezone,
    re.RegexFlag,
    Decimal,
    Fraction,
    sdk.OrderReceipt,
)


@pytest.fixture(scope="module")
def censuses() -> tuple[Census, Census]:
    first = walk(*roots_for(1))
    second = walk(*roots_for(2))
    return first, second


def test_nothing_reachable_has_a_forbidden_shape(censuses) -> None:
    first, _ = censuses
    assert len(first.by_path) > 1000  # the walk really went through the modules and host objects
    assert [f"{f.path}: {f.problem}" for f in first.problems] == []


def test_everything_reachable_is_reviewed(censuses) -> None:
    first, _ = censuses
    unreviewed = sorted(set(first.keys) - set(REVIEWED))
    assert unreviewed == [], (
        "not reviewed (check it takes no attribute name as data, reaches no str.format traversal and holds "
        "no state shared between instances, then add it to tests/sandbox/census_reviewed.py):\n"
        + "\n".join(f"  {k}  (reached as {first.keys[k]})" for k in unreviewed)
    )
    stale = sorted(set(REVIEWED) - set(first.keys))
    assert stale == [], f"listed but no longer reachable (remove from census_reviewed.py): {stale}"
    assert set(REVIEWED.values()) <= set(REASONS)


def shared_objects(first: Census, second: Census) -> list[str]:
    """Paths where two instances reach the very same object that is not an immutable value."""
    shared = []
    for path, obj in first.by_path.items():
        other = second.by_path.get(path, None)
        if other is not obj or type(obj) in PLAIN:
            continue
        if isinstance(obj, (type, *DESCRIPTORS, types.FunctionType)):
            continue  # classes and trusted functions: write-guarded (see the first test)
        if isinstance(obj, C_CALLABLES) and (
            obj.__self__ is None or isinstance(obj.__self__, (types.ModuleType, type))
        ):
            continue
        if type(obj) in (tuple, frozenset) or obj is sdk.EMPTY_SCHEMA or isinstance(obj, SHARED_VALUES):
            continue  # immutable; their items are walked and compared on their own paths
        shared.append(f"{path}: {type(obj).__name__}")
    return shared


def test_nothing_mutable_is_shared_between_instances(censuses) -> None:
    assert shared_objects(*censuses) == []


def test_the_subclassable_bases_are_the_reviewed_ones() -> None:
    names = sorted(t.__qualname__ for t in SUBCLASSABLE)
    assert names == sorted(
        [
            "object",
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "int",
            "float",
            "ArithmeticError",
            "AssertionError",
            "AttributeError",
            "Exception",
            "IndexError",
            "KeyError",
            "LookupError",
            "NotImplementedError",
            "OverflowError",
            "RuntimeError",
            "StopIteration",
            "TypeError",
            "ValueError",
            "ZeroDivisionError",
            "Strategy",
            "SignalStrategy",
        ]
    )
    assert not any(issubclass(t, str) for t in SUBCLASSABLE)
    assert {"format", "format_map"} <= GUARDED_ATTRIBUTES


# The census must be able to fail: each planted object below is reported.
PLANTED = [
    ("real-module", operator, "is the real module operator"),
    ("attrgetter", operator.attrgetter, "reaches operator.attrgetter"),
    ("unbound-format", str.format, "reaches str.format"),
    ("str-subclass", type("S", (str,), {}), "a str subclass"),
]


@pytest.mark.parametrize(("value", "problem"), [p[1:] for p in PLANTED], ids=[p[0] for p in PLANTED])
def test_the_census_reports_planted_objects(value: object, problem: str) -> None:
    roots, rt, guard, write_guard = roots_for(3)
    census = walk({"planted": value, "builtins": roots["builtins"]}, rt, guard, write_guard)
    assert any(problem in f.problem and f.path == "planted" for f in census.problems), census.problems


def test_the_census_reports_unreviewed_and_shared_objects() -> None:
    def stdlib_like(x):  # a Python function with __globals__ that nobody reviewed
        return x

    shared = {"limit": 1}  # one dict handed to two instances
    a = walk({"helper": stdlib_like, "defaults": shared}, *roots_for(4)[1:])
    b = walk({"helper": stdlib_like, "defaults": shared}, *roots_for(5)[1:])
    unreviewed = set(a.keys) - set(REVIEWED)
    assert unreviewed == {
        f"function:{__name__}.test_the_census_reports_unreviewed_and_shared_objects.<locals>.stdlib_like"
    }
    assert shared_objects(a, b) == ["defaults: dict"]
