"""What was wrong with a host reply that strict JSON decoding refused (the client's failure path only).

A host fully controlled by its tenant can write an int of any length; Python refuses to decode one
beyond its digit limit, which would otherwise be reported as a crashed host. Decoding the reply
once more with that one limit lifted finds the int, so the error names where it is: ``BAD_STATE``
in the state, ``BAD_OUTPUT`` anywhere else. Anything else malformed stays ``HOST_CRASHED``. The
happy path never comes here: it costs nothing there.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from sandbox.errors import ErrorCode, SandboxError

MAX_INT_DIGITS = sys.int_info.default_max_str_digits
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


class _LongInt:
    """Stands for an int beyond the digit limit while the reply is searched for it."""

    __slots__ = ()


_LONG = _LongInt()


def _parse_int(text: str) -> Any:
    return _LONG if len(text.lstrip("-")) > MAX_INT_DIGITS else int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _find(value: Any, path: list[Any]) -> list[Any] | None:
    if value is _LONG:
        return path
    if type(value) is dict:
        items: Any = value.items()
    elif type(value) is list:
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _find(item, [*path, key])
        if found is not None:
            return found
    return None


def _step(key: Any) -> str:
    if type(key) is int:
        return f"[{key}]"
    text = str(key)
    return f".{text}" if _NAME.match(text) else "[" + json.dumps(text[:40]) + "]"


def malformed_reply(data: bytes) -> SandboxError:
    """The error for a reply that failed strict decoding (see the module docstring)."""
    crashed = SandboxError(ErrorCode.HOST_CRASHED, "the host sent a malformed reply")
    try:
        reply = json.JSONDecoder(parse_int=_parse_int, parse_constant=_refuse_constant).decode(
            data.decode("utf-8")
        )
        path = _find(reply, [])
    except (ValueError, RecursionError):
        return crashed
    if path is None:
        return crashed
    if path[:1] == ["result"]:
        path = path[1:]
    code = ErrorCode.BAD_STATE if path[:1] == ["state"] else ErrorCode.BAD_OUTPUT
    where = "".join(_step(k) for k in path).lstrip(".") or "the reply"
    return SandboxError(code, f"{where} is an int of more than {MAX_INT_DIGITS} digits")
