"""Attack class: resource exhaustion (loops, allocations, recursion, powers, regexes, log spam)."""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-res", "fast_client")
shared = runner_fixture("t-res-shared")

TIMEOUTS = [
    ("infinite-loop", strategy("while True:\n    pass")),
    ("bare-except-swallow", strategy("while True:\n    try:\n        pass\n    except:\n        pass")),
    ("module-level-loop", strategy(module="while True:\n    pass")),
    ("init-loop", strategy(init="while True:\n    pass")),
    ("c-level-sum", strategy("sum(range(10**12))")),
    ("catastrophic-regex", strategy("import re\nre.match('(a+)+$', 'a' * 40 + 'b')")),
    ("huge-factorial", strategy("import math\nmath.factorial(10**7)")),
    ("huge-int-power", strategy("x = 2 ** (2 ** 40)")),
    ("exponential-doubling", strategy("s = 'ab'\nfor i in range(100):\n    s = s + s")),
    ("render-loop", strategy(render="while True:\n    pass")),
]


@pytest.mark.parametrize("source", [t[1] for t in TIMEOUTS], ids=[t[0] for t in TIMEOUTS])
def test_runaway_cpu_is_killed_with_timeout(runner, source: str) -> None:
    runner.expect(
        source,
        "TIMEOUT",
        "budget; the host was stopped",
        render="render(" in source and "while True" in source.split("def render")[-1],
    )


MEMORY = [
    ("huge-string", strategy("x = 'a' * (10**10)")),
    ("huge-list", strategy("x = [0] * (10**9)")),
    ("list-of-range", strategy("x = list(range(10**9))")),
    ("huge-int-shift", strategy("x = 1 << (2 ** 40)")),
    ("sorted-range", strategy("x = sorted(range(10**9))")),
    ("module-level-alloc", strategy(module="x = bytes(10**10)")),
]


@pytest.mark.parametrize("source", [m[1] for m in MEMORY], ids=[m[0] for m in MEMORY])
def test_memory_exhaustion_is_memory_limit(shared, source: str) -> None:
    shared.expect(source, "MEMORY_LIMIT", "memory limit")


RUNTIME = [
    ("deep-recursion", strategy("def f(n):\n    return f(n + 1)\nf(0)"), "RecursionError"),
    ("generator-recursion", strategy("def g():\n    yield from g()\nlist(g())"), "RecursionError"),
    (
        "repr-recursion",
        strategy("class R:\n    def __repr__(self):\n        return repr(self)\nrepr(R())"),
        "RecursionError",
    ),
    ("huge-int-str", strategy("x = str(10 ** 5000)"), "ValueError"),
]


@pytest.mark.parametrize(("source", "message"), [r[1:] for r in RUNTIME], ids=[r[0] for r in RUNTIME])
def test_recursion_and_int_limits_are_runtime_errors(shared, source: str, message: str) -> None:
    shared.expect(source, "RUNTIME_ERROR", message)


def test_log_spam_is_output_limit(shared) -> None:
    shared.expect(
        strategy("for i in range(100000):\n    self.context.log('spam')"),
        "OUTPUT_LIMIT",
        "more than 100 log lines",
    )


def test_print_spam_is_output_limit(shared) -> None:
    shared.expect(
        strategy("for i in range(1000):\n    print('spam', i)"), "OUTPUT_LIMIT", "more than 100 log lines"
    )


def test_caught_log_overflow_still_fails(shared) -> None:
    shared.expect(
        strategy(
            "try:\n    for i in range(500):\n        self.context.log('x')\nexcept Exception:\n    pass"
        ),
        "OUTPUT_LIMIT",
        "log lines",
    )


def test_long_log_lines_are_truncated(shared) -> None:
    result = shared.ok(strategy("self.context.log('x' * 10**6)"))
    assert len(result["logs"][0]["msg"]) == 2001


def test_other_instances_survive_a_timeout(runner) -> None:
    client, tenant = runner.client, runner.tenant
    before = client._specs[(tenant, "legit")].state["n"]  # noqa: SLF001
    runner.expect(strategy("while True:\n    pass"), "TIMEOUT", "budget")
    assert client._specs[(tenant, "legit")].state["n"] == before + 1  # noqa: SLF001 - restored, then ticked
