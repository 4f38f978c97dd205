"""Friction that ordinary strategy authors hit: legitimate strategies that must work.

``__init__`` is called (no arguments, on every load, before init()); a finite ``Decimal`` is a
valid qty/price; ``typing`` names work in annotations; ``random.Random(seed)`` gives a private,
seedable generator; state errors name the path and say what to store instead.
"""

from __future__ import annotations

import pytest
from sbx_support import TICK, runner_fixture, snapshot, strategy

from sandbox import validate_source

runner = runner_fixture("t-friction")


def test_init_method_is_called_with_the_documented_contract(runner) -> None:
    src = strategy(
        "self.seen.append(tick.price)\nself.state['seen'] = list(self.seen)\nself.state['qty'] = self.qty\n"
        "self.state['ctx_in_init'] = self.ctx_in_init",
        extra=(
            "CONFIG_SCHEMA = {'qty': {'type': 'float', 'default': 2.0}}\n"
            "def __init__(self):\n    super().__init__()\n    self.seen = []\n    self.qty = self.config['qty']\n"
            "    self.ctx_in_init = self.context is None"
        ),
    )
    result = runner.ok(src)
    assert result["state"] == {"seen": [100.0], "qty": 2.0, "ctx_in_init": True}


def test_init_method_with_arguments_is_refused_at_upload_and_load(runner) -> None:
    src = strategy(extra="def __init__(self, window):\n    self.window = window")
    report = validate_source(src)
    assert not report.ok
    issue = report.errors[0]
    assert issue.code == "RUNTIME_ERROR"
    assert "__init__ must take no arguments besides self" in issue.message and "init()" in issue.message
    assert "on_load()" in issue.message
    runner.expect(src, "RUNTIME_ERROR", "__init__ must take no arguments besides self")


def test_decimal_qty_and_price_are_accepted(runner) -> None:
    src = strategy(
        "import decimal\nbal = self.context.get_balance()\n"
        "r1 = self.context.place_order('buy', bal / 1000)\n"
        "r2 = self.context.place_order('sell', decimal.Decimal('0.5'), type='limit', price=decimal.Decimal('101.25'))\n"
        "self.state['s'] = [r1.status, r2.status]",
    )
    result = runner.ok(src, mode="active")
    assert result["state"] == {"s": ["submitted", "submitted"]}
    assert [(i["qty"], i["price"]) for i in result["intents"]] == [(1.0005, None), (0.5, 101.25)]
    assert all(type(i["qty"]) is float for i in result["intents"])


def test_typing_names_work_in_annotations(runner) -> None:
    src = strategy(
        "self.state['v'] = helper([1, 2], None)",
        module=(
            "from typing import Any, Dict, List, Optional, Tuple, Union, Callable, TYPE_CHECKING, cast\n"
            "def helper(xs: List[int], extra: Optional[Dict[str, Any]] = None) -> Tuple[int, Union[int, None]]:\n"
            "    return (cast(int, sum(xs)), None if TYPE_CHECKING else len(xs))\n"
            "F = Callable[[int], int]\n"
        ),
    )
    assert runner.ok(src)["state"] == {"v": [3, 2]}


def test_typing_names_cannot_be_called_or_changed(runner) -> None:
    runner.expect(
        strategy("from typing import List\nList()"), "RUNTIME_ERROR", "typing.List is for annotations only"
    )
    runner.expect(strategy("from typing import List\nList.x = 1"), "FORBIDDEN", "cannot modify")


def test_random_generators_are_seedable_and_private(runner) -> None:
    src = strategy(
        "import random\na = random.Random(42)\nb = random.Random(42)\nc = random.Random('other')\n"
        "xs = [a.random() for _ in range(3)]\nself.state['same'] = xs == [b.random() for _ in range(3)]\n"
        "self.state['differs'] = xs != [c.random() for _ in range(3)]\n"
        "self.state['xs'] = xs\nself.state['pick'] = random.Random(7).choice(['a', 'b', 'c'])",
    )
    first = runner.ok(src)["state"]
    again = runner.ok(src)["state"]
    assert first["same"] is True and first["differs"] is True
    assert first == again  # deterministic across loads
    import random as real_random

    expected = real_random.Random(42)
    assert first["xs"] == [expected.random() for _ in range(3)]


def test_random_generator_refuses_object_seeds(runner) -> None:
    runner.expect(strategy("import random\nrandom.Random(self)"), "RUNTIME_ERROR", "the seed must be an int")


STATE_HINTS = [
    (
        "minus-inf",
        "self.state['low'] = float('-inf')",
        "state['low'] is -inf; NaN and Infinity are not JSON: store None",
    ),
    (
        "deque",
        "import collections\nself.state['w'] = collections.deque([1], maxlen=5)",
        "state['w'] is a value of type deque; store list(value) and rebuild it with deque(",
    ),
    (
        "datetime",
        "import datetime\nself.state['at'] = [datetime.datetime(2024, 1, 1)]",
        "state['at'][0] is a value of type datetime; store value.timestamp()",
    ),
    (
        "int-key",
        "self.state['counts'] = {1: 2}",
        "state['counts'] has a key of type int (1); keys must be strings: use str(key)",
    ),
    (
        "decimal",
        "self.state['bal'] = self.context.get_balance()",
        "state['bal'] is a value of type Decimal; store str(value) and turn it back with Decimal(text)",
    ),
]


@pytest.mark.parametrize(
    ("payload", "message"), [s[1:] for s in STATE_HINTS], ids=[s[0] for s in STATE_HINTS]
)
def test_state_errors_name_the_path_and_what_to_store(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "BAD_STATE", message)


def test_state_stored_as_advised_round_trips(runner) -> None:
    src = strategy(
        "import decimal, collections\n"
        "w = collections.deque(self.state.get('w', []), maxlen=3)\nw.append(tick.price)\nself.state['w'] = list(w)\n"
        "self.state['bal'] = str(self.context.get_balance())\nself.state['counts'] = {str(1): 2}",
    )
    result = runner.ok(src)
    assert result["state"] == {"w": [TICK["price"]], "bal": "1000.50", "counts": {"1": 2}}
    assert snapshot()["balance"] == "1000.50"


def test_init_may_fill_self_state_in_place(runner) -> None:
    src = strategy("self.state['n'] += 1", init="self.state['n'] = 10")
    assert runner.ok(src)["state"] == {"n": 11}
