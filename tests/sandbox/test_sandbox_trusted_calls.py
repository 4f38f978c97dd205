"""Attack class: trusted code calling user-defined special methods on values user code returned.

A lying ``ExitSignal.position_id`` (an object whose ``__ne__`` raises) used to crash the host
(``HOST_CRASHED``) because ``!=`` ran before the exact type check; exception messages ran the
user's ``__str__``/``__repr__`` while trusted code was on the stack. Exact types are checked first
now, and messages are built from plain arguments only.
"""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, snapshot, strategy

runner = runner_fixture("t-trusted")
fast = runner_fixture("t-trusted-fast", "fast_client")

ENTRY_OK = "def should_enter(ctx):\n    return []\n"
EXIT_SOURCE = "def should_exit(ctx, position):\n    return None\n"
POSITION = {
    "position_id": "p1",
    "market": "BTC-USD",
    "side": "long",
    "qty": 1.0,
    "entry_price": 90.0,
    "current_price": 100.0,
    "unrealized_pnl": 10.0,
    "opened_at": 1.0,
}

LIARS = [
    ("ne-raises", "    def __ne__(self, other):\n        raise ValueError('boom')\n"),
    (
        "ne-says-equal",
        "    def __ne__(self, other):\n        return False\n    def __eq__(self, other):\n        return True\n",
    ),
]


@pytest.mark.parametrize("methods", [m[1] for m in LIARS], ids=[m[0] for m in LIARS])
def test_lying_position_id_is_bad_output(runner, methods: str) -> None:
    exit_src = (
        "from sandbox.sdk import ExitSignal\n\nclass Liar:\n"
        + methods
        + "\ndef should_exit(ctx, position):\n    return ExitSignal(Liar(), 'x')\n"
    )
    runner.expect(
        ENTRY_OK,
        "BAD_OUTPUT",
        "ExitSignal.position_id must be the id of the position passed in",
        style="signal_bundle",
        exit_source=exit_src,
        snap=snapshot(positions=[POSITION]),
    )


def test_user_exception_str_is_not_called(runner) -> None:
    src = strategy(
        "raise Loud('plain text')",
        module="class Loud(Exception):\n    def __str__(self):\n        return 'from user code'\n",
    )
    err = runner.expect(src, "RUNTIME_ERROR", "Loud: plain text")
    assert "from user code" not in err.message and "from user code" not in (err.traceback or "")


def test_user_objects_in_exception_args_are_not_printed(fast) -> None:
    """KeyError(obj) would print repr(obj): a repr that never returns used to hold the host to its deadline."""
    src = strategy(
        "{}[Key()]",
        module="class Key:\n    def __hash__(self):\n        return 1\n"
        "    def __repr__(self):\n        while True:\n            pass\n",
    )
    fast.expect(src, "RUNTIME_ERROR", "KeyError: <Key object>")


def test_exception_messages_are_storable_text(runner) -> None:
    err = runner.expect(
        strategy("raise ValueError('a' + chr(0) + chr(0xD800))"), "RUNTIME_ERROR", "ValueError: a"
    )
    assert "\x00" not in err.message
    err.message.encode("utf-8")  # no lone surrogate left


def test_signal_get_price_does_not_compare_user_objects(runner) -> None:
    entry = (
        "class Market:\n    def __eq__(self, other):\n        raise ValueError('user __eq__ ran')\n"
        "    def __hash__(self):\n        return 1\n\n"
        "def should_enter(ctx):\n    ctx.state['p'] = ctx.get_price(Market())\n    return []\n"
    )
    quotes = [{"market": "ETH-USD", "price": 5.0}]
    result = runner.ok(entry, style="signal_bundle", exit_source=EXIT_SOURCE, snap=snapshot(quotes=quotes))
    assert result["state"]["p"] is None


def test_an_exception_with_an_unprintable_int_is_described(runner) -> None:
    runner.expect(strategy("raise ValueError(10 ** 5000)"), "RUNTIME_ERROR", "ValueError: <unprintable>")
    runner.expect(
        strategy("raise ValueError(10 ** 5000, self)"), "RUNTIME_ERROR", "ValueError: <unprintable>"
    )
