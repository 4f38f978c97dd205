"""The engine's re-check of host replies (`stratbox.engine.replies`), value by value.

What cannot cross the wire as JSON — subclassed str/float/int/dict/list values whose special methods
lie or raise, ints far beyond the digit limit, nesting deeper than the recursion limit — is checked
here directly: the engine must not depend on its client's decoder having produced exact types.
The forged-host test (`test_forged_host.py`) drives the same checks through the real stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox import ErrorCode, Limits
from sandbox.malformed import malformed_reply
from stratbox.engine.replies import (
    ReplyRefused,
    error_fields,
    order_intents,
    state_json,
    text_problem,
    tick_reply,
    widgets_reply,
)

PREFIX = "0b5e6c1e-0000-4000-8000-000000000001-1700000000"
LIMITS = Limits()


class Trap:
    """Armed, every special method of a trapped value fails the test if trusted code calls it."""

    armed = False


_TRAPPED = (
    "__eq__ __ne__ __hash__ __str__ __repr__ __format__ __len__ __bool__ __float__ __int__ __index__ "
    "__gt__ __lt__ __ge__ __le__ __contains__ __iter__ __getitem__ __add__ __radd__ __abs__ __round__ "
    "__sub__ __mul__ get items keys values startswith encode isascii isdigit"
).split()


def _trapped(base: type) -> type:
    def make(name: str) -> Any:
        real = getattr(base, name, None)

        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if Trap.armed:
                raise AssertionError(f"trusted code called {base.__name__}.{name} of a host value")
            return real(self, *args, **kwargs)  # type: ignore[misc]

        return method

    return type(f"Lying{base.__name__.title()}", (base,), {n: make(n) for n in _TRAPPED if hasattr(base, n)})


LyingStr, LyingFloat, LyingInt, LyingDict, LyingList = (_trapped(t) for t in (str, float, int, dict, list))


@pytest.fixture
def armed() -> Any:
    Trap.armed = True
    yield
    Trap.armed = False


def _intent(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "order",
        "client_order_id": f"{PREFIX}-1",
        "side": "buy",
        "qty": 1.0,
        "type": "market",
        "price": None,
        "tag": None,
    } | fields


def _denied(intents: Any, mode: str = "active", receipts: Any = None) -> list[tuple[str, str]]:
    accepted, denied = order_intents(intents, receipts, prefix=PREFIX, mode=mode, quota=20)
    return [(a["deny_code"], a["message"]) for a in denied]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"qty": LyingFloat(1.0)}, "qty"),
        ({"qty": LyingInt(1)}, "qty"),
        ({"qty": True}, "qty"),
        ({"price": LyingFloat(1.0), "type": "limit"}, "price"),
        ({"side": LyingStr("buy")}, "side"),
        ({"type": LyingStr("market")}, "type"),
        ({"tag": LyingStr("t")}, "tag"),
        ({"kind": LyingStr("order")}, "kind"),
    ],
)
def test_a_subclassed_value_is_denied_without_running_its_methods(fields, field):
    intents = [_intent(**fields)]
    Trap.armed = True
    try:
        denied = _denied(intents)
    finally:
        Trap.armed = False
    assert [code for code, _ in denied] == ["INVALID_ORDER"] and f"{field}:" in denied[0][1]


def test_subclassed_ids_containers_and_keys_are_refused_without_running_their_methods():
    by_id = [_intent(client_order_id=LyingStr(f"{PREFIX}-1"))]
    as_dict = [LyingDict(_intent())]
    with_key = [{LyingStr("qty"): 1.0, **{k: v for k, v in _intent().items() if k != "qty"}}]
    as_list = LyingList([_intent()])
    state = {"n": LyingInt(1)}
    state_dict = LyingDict({"n": 1})
    Trap.armed = True
    try:
        assert [c for c, _ in _denied(by_id)] == ["ORDER_ID_MISMATCH"]
        assert [c for c, _ in _denied(as_dict)] == ["INVALID_ORDER"]
        assert [c for c, _ in _denied(with_key)] == ["INVALID_ORDER"]
        with pytest.raises(ReplyRefused, match="intents must be a list"):
            _denied(as_list)
        with pytest.raises(ReplyRefused, match=r"state\.n holds a value of another type") as refused:
            state_json(state, LIMITS)
        assert refused.value.code == ErrorCode.BAD_STATE
        with pytest.raises(ReplyRefused, match="state must be an object"):
            state_json(state_dict, LIMITS)
    finally:
        Trap.armed = False


def test_a_value_whose_type_name_is_a_trap_is_refused_without_reading_the_name():
    class Meta(type):
        @property
        def __name__(cls) -> str:  # type: ignore[override]
            raise AssertionError("trusted code read the type's name")

    odd = Meta("Odd", (), {})()
    with pytest.raises(ReplyRefused, match=r"state\.x holds a value of another type"):
        state_json({"x": odd}, LIMITS)


@pytest.mark.parametrize(
    ("state", "code", "message"),
    [
        ({"big": 10**5000}, "BAD_STATE", "state.big is an int of more than 4300 digits"),
        ({"neg": [-(10**4300)]}, "BAD_STATE", "state.neg[0] is an int of more than 4300 digits"),
        ({"nan": float("nan")}, "BAD_STATE", "state.nan is not a finite number"),
        ({"x": {"a b": "\x00"}}, "BAD_STATE", 'state.x["a b"] contains a NUL character'),
        ({"\x00key": 1}, "BAD_STATE", "state has a key that contains a NUL character"),
        ({"s": ["ok", "\udfff"]}, "BAD_STATE", "state.s[1] contains a lone surrogate"),
        ({"t": (1, 2)}, "BAD_STATE", "state.t holds a value of another type"),
        ({"blob": "x" * 400_000}, "OUTPUT_LIMIT", "state.blob is larger than"),
        ({"_sb_history": ["1.0"]}, "BAD_STATE", "state._sb_history must be a list of at most 1000 prices"),
    ],
)
def test_state_problems_name_their_path(state, code, message):
    with pytest.raises(ReplyRefused) as refused:
        state_json(state, LIMITS)
    assert refused.value.code == code and message in refused.value.message
    assert text_problem(refused.value.message) is None  # the message itself is storable


def test_nesting_far_beyond_the_recursion_limit_is_refused_at_the_depth_limit():
    deep: Any = 1
    for _ in range(100_000):
        deep = {"d": deep}
    with pytest.raises(ReplyRefused, match="is nested more than 32 levels deep") as refused:
        state_json({"root": deep}, LIMITS)
    assert refused.value.message.startswith("state.root.d.d.d")


def test_a_valid_state_comes_back_as_its_json_text_with_its_history_and_emoji():
    state = {"n": 1, "note": "naïve 😀", "_sb_history": [1.5, 2], "big": 10**4299}
    text = state_json(state, LIMITS)
    assert json.loads(text) == state


def test_the_order_id_must_be_this_instances_for_this_tick_and_used_once():
    other_instance = "0b5e6c1e-0000-4000-8000-000000000002-1700000000"
    cases = [
        _intent(client_order_id=f"{other_instance}-1"),
        _intent(client_order_id=f"{PREFIX[:-1]}1-1"),  # another tick
        _intent(client_order_id=f"{PREFIX}-0"),
        _intent(client_order_id=f"{PREFIX}-01"),
        _intent(client_order_id=f"{PREFIX}-21"),  # beyond the quota of 20
        _intent(client_order_id=f"{PREFIX}-²"),
        _intent(client_order_id=f"{PREFIX}-1-x"),
    ]
    for intent in cases:
        assert [c for c, _ in _denied([intent])] == ["ORDER_ID_MISMATCH"], intent["client_order_id"]
    accepted, denied = order_intents(
        [_intent(), _intent(side="sell")], None, prefix=PREFIX, mode="active", quota=20
    )
    assert [i["side"] for i in accepted] == ["buy"] and [a["deny_code"] for a in denied] == [
        "ORDER_ID_MISMATCH"
    ]


def test_the_quota_allows_exactly_its_number_of_orders_per_call():
    twenty = [_intent(client_order_id=f"{PREFIX}-{n}") for n in range(1, 21)]
    accepted, denied = order_intents(twenty, None, prefix=PREFIX, mode="active", quota=20)
    assert len(accepted) == 20 and denied == []
    accepted, denied = order_intents(
        [*twenty, _intent(client_order_id=f"{PREFIX}-20")], None, prefix=PREFIX, mode="active", quota=20
    )
    assert accepted == [] and [a["deny_code"] for a in denied] == ["ORDER_QUOTA_EXCEEDED"]


@pytest.mark.parametrize(
    ("mode", "told", "denied"),
    [
        ("observe", "submitted", ["MODE_MISMATCH"]),
        ("active", "shadow", ["MODE_MISMATCH"]),
        ("observe", "shadow", []),
        ("active", "submitted", []),
    ],
)
def test_receipts_must_agree_with_the_instances_mode(mode, told, denied):
    receipts = [{"client_order_id": f"{PREFIX}-1", "status": told, "reason": None}]
    assert [c for c, _ in _denied([_intent()], mode=mode, receipts=receipts)] == denied


def test_a_denied_action_echoes_only_storable_fields():
    accepted, denied = order_intents(
        [_intent(side="b\x00uy", qty=float("inf"), tag="\ud800", client_order_id=f"{PREFIX}-1\x00")],
        None,
        prefix=PREFIX,
        mode="active",
        quota=20,
    )
    action = denied[0]
    assert action["deny_code"] == "ORDER_ID_MISMATCH"
    assert action["client_order_id"] is None and action["side"] is None and action["qty"] is None
    assert all(text_problem(v) is None for v in action.values() if type(v) is str)


def test_a_tick_reply_with_fields_of_its_own_is_refused():
    good = {"intents": [], "state": {"n": 1}, "logs": [], "receipts": []}
    checked, accepted, denied = tick_reply(good, prefix=PREFIX, mode="active", limits=LIMITS)
    assert checked["state_json"] == '{"n":1}' and accepted == denied == []
    for field in ("mode", "snapshot", "order_id_prefix", "account_id"):
        with pytest.raises(ReplyRefused, match=f"the tick reply.{field} is not a field a host may send"):
            tick_reply(good | {field: "x"}, prefix=PREFIX, mode="observe", limits=LIMITS)


def test_widgets_and_error_reports():
    assert widgets_reply({"widgets": [{"type": "text", "text": "hi"}]}, LIMITS) == [
        {"type": "text", "text": "hi"}
    ]
    with pytest.raises(ReplyRefused, match=r"widgets\[0\] must be an object with a known type"):
        widgets_reply({"widgets": [{"type": "iframe", "src": "x"}]}, LIMITS)
    error = error_fields("RUNTIME_ERROR", "a\x00b\ud800", True, LyingStr("tb"))
    assert error == {"code": "RUNTIME_ERROR", "message": "a\ufffdb?", "line": None, "traceback": None}


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            '{"ok":true,"result":{"state":{"x":[1,%s]}}}',
            "BAD_STATE",
            "state.x[1] is an int of more than 4300 digits",
        ),
        (
            '{"ok":true,"result":{"logs":[{"msg":-%s}]}}',
            "BAD_OUTPUT",
            "logs[0].msg is an int of more than 4300 digits",
        ),
        ('{"ok":true,"result":{"a\\u0000":%s}}', "BAD_OUTPUT", '["a\\u0000"] is an int of more than'),
        ('{"ok":true,"result":[NaN, %s]}', "HOST_CRASHED", "malformed reply"),
        ('{"ok":true,"result":%s', "HOST_CRASHED", "malformed reply"),
    ],
)
def test_the_client_names_an_int_it_cannot_decode(text, code, message):
    error = malformed_reply((text % ("7" * 5000)).encode())
    assert error.code == code and message in error.message


def test_a_backtest_trades_reason_is_made_storable():
    import base64
    from array import array

    from stratbox.backtests.sandbox_client import normalize_chunk

    chunk = {
        "fills_packed": base64.b64encode(array("d", [1.0, 1.0, 100.0, 0.1]).tobytes()).decode(),
        "trades_packed": base64.b64encode(array("d", [1, 2, 1.0, 1, 100, 101, 1] * 3).tobytes()).decode(),
        "trade_reasons": ["take\x00profit", "\ud800", 7],
        "broker": {"qty": 1.0, "avg_price": 100.0, "entry_ts": 1.0},
        "summary": {"equity": 999.9},
    }
    reasons = [t["reason"] for t in normalize_chunk(chunk)["trades"]]
    assert reasons == ["take\ufffdprofit", "?", ""]


def test_an_error_a_host_reports_is_made_storable_where_the_client_reads_it():
    from sandbox import SandboxError

    error = SandboxError.from_dict(
        {"code": "RUNTIME_ERROR", "message": "x\x00y\udc00", "line": 10**30, "traceback": "\x00"}
    )
    assert (error.code, error.message, error.line, error.traceback) == (
        "RUNTIME_ERROR",
        "x\ufffdy?",
        None,
        "\ufffd",
    )
    assert SandboxError.from_dict({"code": LyingStr("RUNTIME_ERROR"), "message": "m"}).code == "HOST_CRASHED"
    assert SandboxError.from_dict(LyingDict(code="RUNTIME_ERROR", message="m")).code == "HOST_CRASHED"
