"""Attack class: stdlib helpers that read or write attributes by a *string* name.

``functools.update_wrapper``/``wraps`` with caller-chosen ``assigned``/``updated`` used to write
``__code__`` onto a real stdlib function (tenant code then ran with real builtins and ``sys``).
Every helper of that shape is now a stand-in that only touches the user's own objects and applies
the compile-time name rules to any name it is given.
"""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-byname")

EVIL = "def evil():\n    return 1\n"

REFUSED = [
    (
        "wraps-code-onto-stdlib",
        "import functools, statistics\nfunctools.wraps(evil, assigned=('__code__',))(statistics.mean)",
        '"__code__" is an invalid attribute name',
    ),
    (
        "wraps-code-onto-own",
        "import functools\ndef mine():\n    pass\nfunctools.wraps(evil, assigned=('__code__',))(mine)",
        '"__code__" is an invalid attribute name',
    ),
    (
        "wraps-globals-updated",
        "import functools\ndef mine():\n    pass\nfunctools.wraps(evil, updated=('__globals__',))(mine)",
        '"__globals__" is an invalid attribute name',
    ),
    (
        "wraps-dict-as-assigned",
        "import functools\ndef mine():\n    pass\nfunctools.wraps(evil, assigned=['__dict__'])(mine)",
        '"__dict__" is an invalid attribute name',
    ),
    (
        "wraps-default-onto-stdlib",
        "import functools, statistics\nfunctools.wraps(evil)(statistics.mean)",
        "functools.wraps can only decorate a function defined in your strategy",
    ),
    (
        "wraps-default-onto-sdk",
        "import functools\nfrom sandbox import sdk\nfunctools.wraps(evil)(sdk.metric)",
        "functools.wraps can only decorate a function defined in your strategy",
    ),
    (
        "wraps-onto-method",
        "import functools\nfunctools.wraps(evil)(self.context.log)",
        "functools.wraps can only decorate a function defined in your strategy",
    ),
    (
        "wraps-via-partial",
        "import functools, statistics\nw = functools.partial(functools.wraps, assigned=('__code__',))\nw(evil)(statistics.mean)",
        '"__code__" is an invalid attribute name',
    ),
    (
        "wraps-names-not-strings",
        "import functools\ndef mine():\n    pass\nfunctools.wraps(evil, assigned=(1,))(mine)",
        "must be a tuple of attribute names",
    ),
    (
        "total-ordering-stdlib",
        "import functools, fractions\nfunctools.total_ordering(fractions.Fraction)",
        "functools.total_ordering can only decorate a class defined in your strategy",
    ),
    (
        "total-ordering-sdk",
        "import functools\nfrom sandbox.sdk import Position\nfunctools.total_ordering(Position)",
        "functools.total_ordering can only decorate a class defined in your strategy",
    ),
    (
        "cached-property-subclass",
        "import functools\nclass C(functools.cached_property):\n    pass",
        "subclassing cached_property is not allowed",
    ),
    ("getattr-name-rules", "getattr(self, '_sb_' + 'context')", '"_sb_context" is an invalid attribute name'),
]


@pytest.mark.parametrize(("payload", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_attribute_names_as_data_follow_the_policy(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload, module=EVIL), "FORBIDDEN", message)


def test_the_stdlib_function_is_untouched_for_the_next_instance(runner) -> None:
    """After the refused attempt, statistics.mean still computes a mean in a fresh instance."""
    runner.expect(
        strategy(
            "import functools, statistics\nfunctools.wraps(evil, assigned=('__code__',))(statistics.mean)",
            module=EVIL,
        ),
        "FORBIDDEN",
        '"__code__"',
    )
    result = runner.ok(strategy("import statistics\nself.state['m'] = statistics.mean([1, 2, 3])"))
    assert result["state"] == {"m": 2}


def test_legitimate_decorators_still_work(runner) -> None:
    src = strategy(
        "self.state['v'] = traced(2)\n"
        "self.state['lt'] = P(1, 2) < P(2, 1)\nself.state['label'] = labelled.label",
        module=(
            "import functools, collections\n"
            "def log_calls(fn):\n    @functools.wraps(fn)\n    def inner(x):\n        return fn(x) + 1\n    return inner\n"
            "@log_calls\ndef traced(x):\n    return x * 10\n"
            "class Meta:\n    label = 'kept'\n"
            "@functools.wraps(Meta(), assigned=('label',), updated=())\ndef labelled():\n    pass\n"
            "@functools.total_ordering\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
            "    def __eq__(self, o):\n        return self.v == o.v\n    def __lt__(self, o):\n        return self.v < o.v\n"
            "class P(collections.namedtuple('P', 'x y')):\n    pass\n"
        ),
    )
    result = runner.ok(src)
    assert result["state"] == {"v": 21, "lt": True, "label": "kept"}
