"""A forged sandbox host, for the engine's assume-breach tests only (never reachable in production).

It *is* the real host — `sandbox.host.main`: the same boot, confinement and protocol, and the
strategy really runs — with one difference: just before a reply leaves the process it is rewritten
the way a host fully controlled by its tenant could write it. The test's sandbox client starts it
instead of the normal host by swapping the boot line (see `tests/engine/test_forged_host.py`);
nothing in the platform reads or knows this module.

Which forgery: a line ``# FORGE: <name> [<arg>]`` in the instance's strategy source (the first file
of its load). When: on ticks and signal cycles at the price ``FORGE_PRICE`` (any other price is
answered honestly, so the next tick of the same instance is a legitimate one), and on every load or
render for the ``load_*`` and ``render_*`` forgeries. Placeholders stand for what Python's JSON
encoder cannot write (``1e999``, ``NaN``, an int of 5,000 digits) and are swapped in as raw text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

FORGE_PRICE = 13.0
_LINE = re.compile(r"^# FORGE: (\S+) *(\S*) *$", re.MULTILINE)
_RAW = {
    '"@@INF@@"': "1e999",
    '"@@NAN@@"': "NaN",
    '"@@LONGINT@@"': "9" * 5000,
}


def forged_boot(boot: str) -> str:
    """The client's host boot line, starting this module's host instead of the real one."""
    forged = boot.replace("from sandbox.host import main", "from tests.engine.forged_host import main")
    assert forged != boot, "the host's boot line changed: update the forged host's"
    return forged


def _order(prefix: str, n: int, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "order",
        "client_order_id": f"{prefix}-{n}",
        "side": "buy",
        "qty": 0.01,
        "type": "market",
        "price": None,
        "tag": None,
    } | fields


def _first(**fields: Any) -> Callable[[dict[str, Any], dict[str, Any], str], None]:
    def forge(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
        result["intents"][0].update(fields)

    return forge


def _set(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any], str], None]:
    def forge(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
        result[key] = value

    return forge


def _state(key: str, value: Any) -> Callable[[dict[str, Any], dict[str, Any], str], None]:
    def forge(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
        result["state"][key] = value

    return forge


def _prefix(msg: dict[str, Any]) -> str:
    return str(msg["snapshot"]["order_id_prefix"])


def _quota(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    prefix = _prefix(msg)
    result["intents"] = [_order(prefix, n) for n in range(1, 22)]
    result["receipts"] = [
        {"client_order_id": f"{prefix}-{n}", "status": "submitted", "reason": None} for n in range(1, 22)
    ]


def _coid_foreign(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    seq = _prefix(msg).rsplit("-", 1)[1]
    result["intents"][0]["client_order_id"] = f"{arg}-{seq}-1"  # another instance's id, this slot


def _coid_old_tick(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    iid, seq = _prefix(msg).rsplit("-", 1)
    result["intents"][0]["client_order_id"] = f"{iid}-{int(seq) - 1}-1"


def _coid_out_of_range(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    result["intents"][0]["client_order_id"] = f"{_prefix(msg)}-99"


def _observe_submitted(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    result["receipts"][0]["status"] = "submitted"


def _deep(result: dict[str, Any], msg: dict[str, Any], arg: str) -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    result["state"]["deep"] = deep


def _error(reply: dict[str, Any], msg: dict[str, Any], arg: str) -> dict[str, Any]:
    return {
        "ok": False,
        "fatal": False,
        "error": {
            "code": "RUNTIME_ERROR",
            "message": "boom \x00 and \ud800",
            "line": 10**30,
            "traceback": 'File "strategy.py", line 3\x00\udfff',
        },
    }


def _not_object(reply: dict[str, Any], msg: dict[str, Any], arg: str) -> dict[str, Any]:
    return reply | {"result": ["not", "an", "object"]}


# name -> a change to the reply's result (tick and signal forgeries), or to the whole reply.
RESULT_FORGERIES: dict[str, Callable[[dict[str, Any], dict[str, Any], str], None]] = {
    # order intents: each is denied with its own code
    "qty_inf": _first(qty="@@INF@@"),
    "qty_negative": _first(qty=-1.0),
    "qty_zero": _first(qty=0),
    "qty_bool": _first(qty=True),
    "qty_string": _first(qty="1"),
    "price_inf": _first(type="limit", price="@@INF@@"),
    "side_unknown": _first(side="borrow"),
    "type_unknown": _first(type="stop_hunt"),
    "kind_unknown": _first(kind="transfer"),
    "intent_not_object": _set("intents", ["buy 1"]),
    "quota": _quota,
    "coid_foreign": _coid_foreign,
    "coid_old_tick": _coid_old_tick,
    "coid_out_of_range": _coid_out_of_range,
    "observe_submitted": _observe_submitted,
    "intent_status": _first(status="submitted"),
    "intent_market": _first(market="ETH/USDT"),
    "intent_account": _first(account_id="@arg"),
    "tag_nul": _first(tag="a\x00b"),
    "tag_surrogate": _first(tag="\ud800"),
    "tag_huge": _first(tag="x" * 1_000_000),
    # the reply as a whole: refused, the tick fails
    "reply_mode": _set("mode", "active"),
    "reply_snapshot": _set("snapshot", {"mode": "active", "order_id_prefix": "x"}),
    "intents_not_list": _set("intents", {"0": "order"}),
    "state_not_object": _set("state", [1]),
    "state_nul": _state("note", "a\x00b"),
    "state_nul_key": _state("a\x00", 1),
    "state_surrogate": _state("s", "\udc80"),
    "state_inf": _state("x", "@@INF@@"),
    "state_deep": _deep,
    "state_huge": _state("blob", "x" * 2_000_000),
    "state_long_int": _state("big", "@@LONGINT@@"),
    "logs_nul": _set("logs", [{"level": "info", "msg": "a\x00b"}]),
    "logs_surrogate": _set("logs", [{"level": "info", "msg": "\ud83d alone"}]),
    "logs_not_list": _set("logs", "boom"),
    "logs_level": _set("logs", [{"level": "fatal", "msg": "x"}]),
    "logs_flood": _set("logs", [{"level": "info", "msg": "x"}] * 10_000),
    "logs_huge": _set("logs", [{"level": "info", "msg": "x" * 1_000_000}]),
    "receipts_not_list": _set("receipts", "all submitted"),
    "nan_literal": _first(qty="@@NAN@@"),
    "qty_long_int": _first(qty="@@LONGINT@@"),
    # signal cycles
    "entry_foreign_market": _set(
        "entries", [{"market": "ETH/USDT", "side": "long", "reason": "r", "confidence": 1.0}]
    ),
    "entry_confidence_string": _set(
        "entries", [{"market": "@market", "side": "long", "reason": "r", "confidence": "1"}]
    ),
    "entries_not_list": _set("entries", {"market": "@market"}),
    "exit_reason_nul": _set("exits", [{"position_id": "1", "reason": "a\x00"}]),
}
REPLY_FORGERIES: dict[str, Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]] = {
    "error_nul": _error,
    "reply_not_object": _not_object,
}
LOAD_FORGERIES = {"load_state_nul": ("state", {"n": 0, "inits": 1, "x": "\x00"})}
RENDER_FORGERIES = {
    "render_nul": {"widgets": [{"type": "text", "text": "a\x00b"}]},
    "render_surrogate_key": {"widgets": [{"type": "metric", "label": "x", "value": 1, "\ud800": 2}]},
    "render_extra_field": {"widgets": [], "state": {"n": 1000}},
}


def _resolve(value: Any, arg: str, market: str) -> Any:
    if value == "@arg":
        return arg
    if value == "@market":
        return market
    if type(value) is dict:
        return {k: _resolve(v, arg, market) for k, v in value.items()}
    if type(value) is list:
        return [_resolve(v, arg, market) for v in value]
    return value


def _encode(reply: Any) -> bytes:
    text = json.dumps(reply, separators=(",", ":"))
    for token, raw in _RAW.items():
        text = text.replace(token, raw)
    return text.encode("utf-8", "surrogatepass")


def _due(msg: dict[str, Any]) -> bool:
    if msg.get("cmd") == "tick":
        return bool(msg["tick"].get("price") == FORGE_PRICE)
    if msg.get("cmd") == "signal_cycle":
        return bool((msg["snapshot"].get("quote") or {}).get("price") == FORGE_PRICE)
    return False


def main(namespaces: Any = None) -> None:
    from sandbox import host as real

    forged: dict[str, tuple[str, str]] = {}  # instance id -> (forgery, its argument)
    answer = real.Host._answer

    def forged_answer(self: Any, msg: Any) -> tuple[bytes, bool]:
        if type(msg) is dict and msg.get("cmd") == "load":
            sources = msg.get("sources") or {}
            found = _LINE.search(next(iter(sources.values()), ""))
            if found:
                forged[msg["instance_id"]] = (found.group(1), found.group(2) or "")
        data, fatal = answer(self, msg)
        iid = msg.get("instance_id") if type(msg) is dict else None
        if iid not in forged:
            return data, fatal
        name, arg = forged[iid]
        reply = json.loads(data)
        cmd = msg.get("cmd")
        if cmd == "load" and name in LOAD_FORGERIES and reply.get("ok"):
            key, value = LOAD_FORGERIES[name]
            reply["result"][key] = value
            return _encode(reply), fatal
        if cmd == "render" and name in RENDER_FORGERIES:
            return _encode({"ok": True, "fatal": False, "result": RENDER_FORGERIES[name]}), fatal
        if not _due(msg) or not reply.get("ok"):
            return data, fatal
        if name in REPLY_FORGERIES:
            return _encode(REPLY_FORGERIES[name](reply, msg, arg)), fatal
        if name not in RESULT_FORGERIES:
            return data, fatal  # "none": an honest instance in a forged host
        market = str((msg["snapshot"].get("quote") or {}).get("market") or "")
        RESULT_FORGERIES[name](reply["result"], msg, arg)
        reply["result"] = _resolve(reply["result"], arg, market)
        return _encode(reply), fatal

    real.Host._answer = forged_answer  # type: ignore[method-assign]
    if namespaces is None:
        real.main()
    else:
        real.main(namespaces)  # the keeper split's outcome, as the real boot line passes it
