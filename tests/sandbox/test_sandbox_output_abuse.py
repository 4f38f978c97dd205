"""Attack class: output abuse (non-JSON state, NaN, cycles, giant payloads, bad widgets/signals)."""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, snapshot, strategy

runner = runner_fixture("t-output")

BAD_STATE = [
    ("nan", "self.state['x'] = float('nan')", "NaN and Infinity are not JSON"),
    ("inf", "self.state['x'] = float('inf')", "NaN and Infinity are not JSON"),
    ("cycle", "self.state['me'] = self.state", "is a reference back to a containing object (a cycle)"),
    ("list-cycle", "a = []\na.append(a)\nself.state['a'] = a", "state['a'][0] is a reference back"),
    ("object", "self.state['o'] = object()", "state['o'] is a value of type object"),
    ("set", "self.state['s'] = {1, 2}", "state['s'] is a value of type set; store sorted(value) (a list)"),
    ("bytes", "self.state['b'] = b'x'", "state['b'] is a value of type bytes; store value.hex() (a string)"),
    (
        "non-str-key",
        "self.state[1] = 2",
        "state has a key of type int (1); keys must be strings: use str(key)",
    ),
    (
        "deep",
        "x = []\nfor i in range(100):\n    x = [x]\nself.state['deep'] = x",
        "nested more than 32 levels deep",
    ),
    ("not-a-dict", "self.state = [1, 2]", "state must be a dict, not list"),
    ("dict-subclass", "class D(dict):\n    pass\nself.state = D()", "state must be a dict, not D"),
    (
        "float-subclass",
        "class F(float):\n    pass\nself.state['f'] = F(1.0)",
        "state['f'] is a value of type F",
    ),
    ("function", "self.state['f'] = len", "builtin_function_or_method"),
]


@pytest.mark.parametrize(("payload", "message"), [b[1:] for b in BAD_STATE], ids=[b[0] for b in BAD_STATE])
def test_non_json_state_is_bad_state(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "BAD_STATE", message)


def test_giant_state_is_output_limit(runner) -> None:
    runner.expect(strategy("self.state['big'] = 'x' * (1024 * 1024)"), "OUTPUT_LIMIT", "state is")


def test_init_returning_non_dict_is_bad_state(runner) -> None:
    runner.expect(strategy(init="return [1]"), "BAD_STATE", "state must be a dict")


def test_init_returning_nan_is_bad_state(runner) -> None:
    runner.expect(strategy(init="return {'x': float('nan')}"), "BAD_STATE", "NaN")


BAD_RENDER = [
    ("not-dict", "return 42", "BAD_OUTPUT", 'render() must return {"widgets": [...]}'),
    (
        "unknown-type",
        "return {'widgets': [{'type': 'iframe', 'src': 'x'}]}",
        "BAD_OUTPUT",
        "type must be one of",
    ),
    (
        "nan",
        "return {'widgets': [{'type': 'metric', 'label': 'x', 'value': float('nan')}]}",
        "BAD_OUTPUT",
        "NaN",
    ),
    (
        "bad-points",
        "return {'widgets': [{'type': 'line_chart', 'title': 't', 'series': [{'name': 'a', 'points': [[1]]}]}]}",
        "BAD_OUTPUT",
        "points must be",
    ),
    (
        "bad-rows",
        "return {'widgets': [{'type': 'table', 'columns': ['a'], 'rows': [[{'x': 1}]]}]}",
        "BAD_OUTPUT",
        "each row must be",
    ),
    (
        "object",
        "return {'widgets': [{'type': 'text', 'text': object()}]}",
        "BAD_OUTPUT",
        "render() output['widgets'][0]['text'] is a value of type object",
    ),
    (
        "giant",
        "return {'widgets': [{'type': 'text', 'text': 'x' * 19000}] * 40}",
        "OUTPUT_LIMIT",
        "render() output is",
    ),
    (
        "too-many",
        "return {'widgets': [{'type': 'text', 'text': 'x'}] * 100}",
        "OUTPUT_LIMIT",
        "more than 50 widgets",
    ),
]


@pytest.mark.parametrize(
    ("payload", "code", "message"), [b[1:] for b in BAD_RENDER], ids=[b[0] for b in BAD_RENDER]
)
def test_bad_render_output(runner, payload: str, code: str, message: str) -> None:
    runner.expect(strategy(render=payload), code, message, render=True)


def test_order_flood_is_quota_limited(runner) -> None:
    result = runner.ok(
        strategy("for i in range(100000):\n    self.context.place_order('buy', 1)"), mode="active"
    )
    assert len(result["intents"]) == 20
    assert [r["status"] for r in result["receipts"]].count("submitted") == 20
    assert result["receipts"][-1] == {
        "client_order_id": None,
        "status": "rejected",
        "reason": "ORDER_QUOTA_EXCEEDED",
    }
    assert len(result["receipts"]) == 40


ENTRY = "from sandbox.sdk import EntrySignal\n\ndef should_enter(ctx):\n{body}\n"
EXIT_OK = "def should_exit(ctx, position):\n    return None\n"

BAD_SIGNALS = [
    ("not-list", "    return 'buy'", "BAD_OUTPUT", "must return a list of EntrySignal"),
    (
        "dict-signal",
        "    return [{'market': 'X', 'side': 'long'}]",
        "BAD_OUTPUT",
        "must return EntrySignal objects",
    ),
    ("flood", "    return [EntrySignal('X', 'long')] * 1000", "OUTPUT_LIMIT", "more than 50 signals"),
    (
        "nan-confidence",
        "    return [EntrySignal('X', 'long', 'r', float('nan'))]",
        "BAD_OUTPUT",
        "confidence",
    ),
    ("bad-side", "    return [EntrySignal('X', 'sideways')]", "BAD_OUTPUT", "side must be"),
    (
        "subclass",
        "    class E(EntrySignal):\n        pass\n    return [E('X', 'long')]",
        "FORBIDDEN",
        "subclassing EntrySignal is not allowed",
    ),
    ("state-nan", "    ctx.state['x'] = float('nan')\n    return []", "BAD_STATE", "NaN"),
]


@pytest.mark.parametrize(
    ("body", "code", "message"), [b[1:] for b in BAD_SIGNALS], ids=[b[0] for b in BAD_SIGNALS]
)
def test_bad_entry_signals(runner, body: str, code: str, message: str) -> None:
    runner.expect(ENTRY.format(body=body), code, message, style="signal_bundle", exit_source=EXIT_OK)


def test_exit_for_another_position_is_refused(runner) -> None:
    exit_src = "from sandbox.sdk import ExitSignal\n\ndef should_exit(ctx, position):\n    return ExitSignal('someone-elses', 'x')\n"
    snap = snapshot(
        positions=[
            {
                "position_id": "p1",
                "market": "BTC-USD",
                "side": "long",
                "qty": 1.0,
                "entry_price": 90.0,
                "current_price": 100.0,
                "unrealized_pnl": 10.0,
                "opened_at": 1.0,
            }
        ]
    )
    runner.expect(
        ENTRY.format(body="    return []"),
        "BAD_OUTPUT",
        "must be the id of the position passed in",
        style="signal_bundle",
        exit_source=exit_src,
        snap=snap,
    )
