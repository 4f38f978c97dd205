"""Attack class: values that pass JSON but not PostgreSQL/UTF-8 (NUL, lone surrogates, giant ints).

They used to pass the host's checks (or crash it: a 5,000-digit int came back HOST_CRASHED); now
they are refused where they are produced, with BAD_STATE / BAD_OUTPUT naming the path.
"""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, snapshot, strategy

runner = runner_fixture("t-unstorable")

STATE = [
    ("nul-value", "self.state['a'] = ['x', 'b' + chr(0)]", "state['a'][1] contains a NUL character"),
    ("nul-key", "self.state['k' + chr(0)] = 1", "state has a key that contains a NUL character"),
    (
        "nested-nul-key",
        "self.state['d'] = {'k' + chr(0): 1}",
        "state['d'] has a key that contains a NUL character",
    ),
    ("surrogate-value", "self.state['s'] = chr(0xDC80)", "state['s'] contains a lone surrogate"),
    ("surrogate-key", "self.state[chr(0xD800)] = 1", "state has a key that contains a lone surrogate"),
    ("huge-int", "self.state['n'] = 10 ** 5000", "state['n'] is an int of more than 4300 digits"),
    (
        "huge-negative-int",
        "self.state['n'] = [-(10 ** 4400)]",
        "state['n'][0] is an int of more than 4300 digits",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [s[1:] for s in STATE], ids=[s[0] for s in STATE])
def test_unstorable_state_is_bad_state(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "BAD_STATE", message)


def test_unstorable_initial_state_is_bad_state(runner) -> None:
    runner.expect(
        strategy(init="return {'n': 10 ** 5000}"),
        "BAD_STATE",
        "state['n'] is an int of more than 4300 digits",
    )


OUTPUT = [
    ("log-nul", "self.context.log('a' + chr(0))", "log line 1 contains a NUL character"),
    (
        "log-surrogate",
        "self.context.log('ok')\nself.context.log(chr(0xD800))",
        "log line 2 contains a lone surrogate",
    ),
    ("print-nul", "print('x', chr(0))", "log line 1 contains a NUL character"),
    (
        "log-caught",
        "try:\n    self.context.log(chr(0))\nexcept Exception:\n    pass",
        "log line 1 contains a NUL character",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [o[1:] for o in OUTPUT], ids=[o[0] for o in OUTPUT])
def test_unstorable_logs_are_bad_output(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "BAD_OUTPUT", message)


WIDGETS = [
    (
        "text-nul",
        "return {'widgets': [{'type': 'text', 'text': 'a' + chr(0)}]}",
        "render() output['widgets'][0]['text'] contains a NUL character",
    ),
    (
        "metric-surrogate",
        "return {'widgets': [{'type': 'metric', 'label': chr(0xD800), 'value': 1}]}",
        "render() output['widgets'][0]['label'] contains a lone surrogate",
    ),
    (
        "table-huge-int",
        "return [{'type': 'table', 'columns': ['a'], 'rows': [[10 ** 5000]]}]",
        "render() output['widgets'][0]['rows'][0][0] is an int of more than 4300 digits",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [w[1:] for w in WIDGETS], ids=[w[0] for w in WIDGETS])
def test_unstorable_widgets_are_bad_output(runner, payload: str, message: str) -> None:
    runner.expect(strategy(render=payload), "BAD_OUTPUT", message, render=True)


ENTRY = "from sandbox.sdk import EntrySignal\n\ndef should_enter(ctx):\n    return [EntrySignal({market}, 'long', {reason})]\n"
EXIT_OK = "def should_exit(ctx, position):\n    return None\n"


@pytest.mark.parametrize(
    ("market", "reason", "message"),
    [
        ("'X' + chr(0)", "''", "EntrySignal.market must be a non-empty string of text"),
        ("'X'", "chr(0xD800)", "EntrySignal.reason must be text"),
    ],
)
def test_unstorable_signal_text_is_bad_output(runner, market: str, reason: str, message: str) -> None:
    runner.expect(
        ENTRY.format(market=market, reason=reason),
        "BAD_OUTPUT",
        message,
        style="signal_bundle",
        exit_source=EXIT_OK,
        snap=snapshot(),
    )


def test_unstorable_tag_is_rejected_and_nothing_is_sent(runner) -> None:
    result = runner.ok(
        strategy("r = self.context.place_order('buy', 1, tag='t' + chr(0))\nself.state['why'] = r.reason"),
        mode="active",
    )
    assert result["intents"] == [] and result["state"] == {"why": "INVALID_TAG"}
