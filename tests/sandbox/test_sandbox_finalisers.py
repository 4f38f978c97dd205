"""Attack class: user code that would run after its call ended (finalisers, generator cleanup).

A suspended generator is closed when it is garbage-collected: its ``finally``/``except`` clauses and
the ``__exit__`` of a ``with`` around the ``yield`` would run at an arbitrary later moment -- outside
the call's budget, possibly inside another instance's call. The policy refuses every construct that
makes a finaliser run user code (``__del__``, a ``yield`` inside ``try``/``with``), so closing a user
generator executes nothing of the user's; the host also collects an unloaded instance's garbage
inside the unload's own budget.
"""

from __future__ import annotations

import pytest
from sbx_support import LEGIT, TICK, runner_fixture, snapshot, strategy

from sandbox import validate_source

runner = runner_fixture("t-final")

GEN_CLEANUP = [
    ("try-finally", "def gen():\n    try:\n        yield 1\n    finally:\n        print('late')", 4),
    (
        "try-finally-loop",
        "def gen():\n    try:\n        while True:\n            yield 1\n    finally:\n        while True:\n            pass",
        5,
    ),
    (
        "bare-except",
        "def gen():\n    try:\n        yield 1\n    except:\n        print('caught GeneratorExit')",
        4,
    ),
    (
        "except-expression",
        "def gen():\n    try:\n        yield 1\n    except (print('evaluated at close') or ValueError):\n        pass",
        4,
    ),
    (
        "yield-in-handler",
        "def gen():\n    try:\n        x = 1\n    except ValueError:\n        yield 2\n    finally:\n        print('late')",
        6,
    ),
    (
        "yield-from",
        "def inner():\n    yield 1\ndef gen():\n    try:\n        yield from inner()\n    finally:\n        print('late')",
        6,
    ),
    (
        "with-exit",
        "class C:\n    def __enter__(self):\n        return self\n    def __exit__(self, *a):\n        print('late')\n"
        "def gen():\n    with C():\n        yield 1",
        9,
    ),
    (
        "method-generator",
        "class G:\n    def items(self):\n        try:\n            yield 1\n        finally:\n            print('late')",
        5,
    ),
]


@pytest.mark.parametrize(("module", "line"), [c[1:] for c in GEN_CLEANUP], ids=[c[0] for c in GEN_CLEANUP])
def test_generator_cleanup_code_is_refused_at_load(runner, module: str, line: int) -> None:
    err = runner.expect(strategy("pass", module=module), "FORBIDDEN", "yield inside try/with is not allowed")
    assert err.line == line


def test_generator_cleanup_code_is_reported_at_upload() -> None:
    src = strategy(module="def gen():\n    try:\n        yield 1\n    finally:\n        print('late')")
    report = validate_source(src)
    assert not report.ok
    assert [(i.code, i.line) for i in report.errors] == [("FORBIDDEN", 4)]
    assert "yield inside try/with" in report.errors[0].message


def test_suspended_generators_kept_across_calls_are_harmless(client) -> None:
    """Generators without cleanup clauses still work; dropping them (unload) runs no user code."""
    tenant = "t-final-gen"
    client.load(tenant, "legit", source=LEGIT, config={}, fingerprint="legit")
    src = strategy(
        "if self.g is None:\n    self.g = counter()\nself.state['n'] = next(self.g)",
        module="def counter():\n    n = 0\n    while True:\n        n += 1\n        yield n\n"
        "        try:\n            x = 1 / 1\n        finally:\n            x = 0",
        init="self.g = None\nreturn {'n': 0}",
    )
    client.load(tenant, "gen", source=src, config={})
    assert [client.tick(tenant, "gen", dict(TICK), snapshot())["state"]["n"] for _ in range(3)] == [1, 2, 3]
    client.unload(tenant, "gen")  # the suspended generator (and its cycles) are collected here
    res = client.tick(tenant, "legit", dict(TICK), snapshot("active"))
    assert res["logs"] == [] and res["receipts"][0]["status"] == "submitted"


def test_finaliser_special_methods_cannot_be_installed_later(runner) -> None:
    """RestrictedPython's own setattr does not check names; ours refuses them at compile and run time."""
    runner.expect(
        strategy("S.__del__ = lambda s: None"), "FORBIDDEN", '"__del__" is an invalid attribute name'
    )
    runner.expect(
        strategy("f = getattr(S, '__del__', None)"), "FORBIDDEN", '"__del__" is an invalid attribute name'
    )
    runner.expect(
        strategy(module="class B:\n    pass\nB.__del__ = print"),
        "FORBIDDEN",
        '"__del__" is an invalid attribute name',
    )
