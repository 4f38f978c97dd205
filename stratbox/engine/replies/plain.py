"""Plain data: what any value a host sends must be (exact types, finite, bounded, storable text)."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from sandbox import ErrorCode, Limits, SandboxError
from sandbox.context import LOG_LEVELS

# The digit limit: Python's own bound on int <-> str conversion, the one the host applies too.
MAX_INT_DIGITS = sys.int_info.default_max_str_digits
_INT_BOUND = 10**MAX_INT_DIGITS
HISTORY_KEY = "_sb_history"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


class ReplyRefused(SandboxError):
    """A host reply the engine refuses to use (its code: BAD_STATE, BAD_OUTPUT or OUTPUT_LIMIT)."""


class _Bad(Exception):
    """A problem found while walking a value; the path is collected while the walk unwinds."""

    def __init__(self, code: ErrorCode, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem
        self.path: list[Any] = []


def _step(key: Any) -> str:
    if type(key) is int:
        return f"[{key}]"
    if _NAME.match(key):
        return f".{key}"
    return "[" + json.dumps(key[:40]) + "]"  # ASCII-only: NUL and surrogates are escaped


def _refuse(what: str, bad: _Bad) -> ReplyRefused:
    path = what + "".join(_step(k) for k in reversed(bad.path))
    return ReplyRefused(bad.code, f"{path} {bad.problem}")


def text_problem(value: str) -> str | None:
    """Why an exact ``str`` cannot be stored (NUL, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate"
    return None


def clean_text(value: Any, limit: int) -> str:
    """Untrusted text made storable (for error messages and tracebacks a host reports)."""
    if type(value) is not str:
        return ""
    value = value[:limit]
    if text_problem(value) is None:
        return value
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _walk(value: Any, code: ErrorCode, depth: int, max_depth: int, budget: list[int]) -> None:
    """Plain JSON data only; ``budget`` is a lower bound of the bytes its JSON text still may take."""
    t = type(value)
    if t is str:
        budget[0] -= len(value) + 2
        if budget[0] < 0:
            raise _Bad(ErrorCode.OUTPUT_LIMIT, "is too large")
        problem = text_problem(value)
        if problem:
            raise _Bad(code, problem)
        return
    budget[0] -= 2
    if budget[0] < 0:
        raise _Bad(ErrorCode.OUTPUT_LIMIT, "is too large")
    if t is float:
        if not math.isfinite(value):
            raise _Bad(code, "is not a finite number (NaN and Infinity are not JSON)")
        return
    if t is int:
        if not -_INT_BOUND < value < _INT_BOUND:
            raise _Bad(code, f"is an int of more than {MAX_INT_DIGITS} digits")
        return
    if t is bool or value is None:
        return
    if t is dict:
        if depth >= max_depth:
            raise _Bad(code, f"is nested more than {max_depth} levels deep")
        for key, item in value.items():
            if type(key) is not str:
                raise _Bad(code, "has a key that is not a string")
            budget[0] -= len(key) + 3
            problem = text_problem(key)
            if problem:
                raise _Bad(code, f"has a key that {problem}")
            try:
                _walk(item, code, depth + 1, max_depth, budget)
            except _Bad as bad:
                bad.path.append(key)
                raise
        return
    if t is list:
        if depth >= max_depth:
            raise _Bad(code, f"is nested more than {max_depth} levels deep")
        for index, item in enumerate(value):
            try:
                _walk(item, code, depth + 1, max_depth, budget)
            except _Bad as bad:
                bad.path.append(index)
                raise
        return
    # Never the value's own type name: a metaclass could run code on that lookup.
    raise _Bad(
        code, "holds a value of another type (only objects, lists, strings, numbers, booleans and null)"
    )


def check_plain(value: Any, *, what: str, code: ErrorCode, max_depth: int, max_bytes: int) -> None:
    """Refuse anything in ``value`` that is not plain, storable JSON data."""
    try:
        _walk(value, code, 0, max_depth, [max_bytes])
    except _Bad as bad:
        if bad.code is ErrorCode.OUTPUT_LIMIT:
            bad.problem = f"is larger than {max_bytes} bytes"
        raise _refuse(what, bad) from None


def _fields(value: Any, allowed: frozenset[str], what: str) -> dict[str, Any]:
    """An exact dict with exact-str keys, all of them allowed (so its lookups run no user code)."""
    if type(value) is not dict:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} must be an object")
    for key in value:
        if type(key) is not str:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} has a key that is not a string")
        if key not in allowed:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}{_step(key)} is not a field a host may send")
    return value


def state_json(value: Any, limits: Limits) -> str:
    """Check a state a host returned; its compact JSON text (what the engine persists)."""
    if type(value) is not dict:
        raise ReplyRefused(ErrorCode.BAD_STATE, "state must be an object")
    # The host adds the signal-style price history to the state after its own size check.
    max_bytes = limits.max_state_bytes + 32 * limits.max_history + 64
    check_plain(
        value, what="state", code=ErrorCode.BAD_STATE, max_depth=limits.max_json_depth, max_bytes=max_bytes
    )
    history = value.get(HISTORY_KEY)
    if history is not None and (
        type(history) is not list
        or len(history) > limits.max_history
        or any(type(p) is not float and type(p) is not int for p in history)
    ):
        raise ReplyRefused(
            ErrorCode.BAD_STATE, f"state.{HISTORY_KEY} must be a list of at most {limits.max_history} prices"
        )
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    if len(text) > max_bytes:
        raise ReplyRefused(ErrorCode.OUTPUT_LIMIT, f"state is {len(text)} bytes of JSON (limit {max_bytes})")
    return text


def check_logs(value: Any, limits: Limits, what: str = "logs") -> list[dict[str, str]]:
    if value is None:
        return []
    if type(value) is not list:
        raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what} must be a list")
    if len(value) > limits.max_log_lines:
        raise ReplyRefused(ErrorCode.OUTPUT_LIMIT, f"{what} has more than {limits.max_log_lines} lines")
    max_chars = limits.max_log_chars + 1  # the host marks a cut line with one "…"
    for index, line in enumerate(value):
        item = _fields(line, frozenset({"level", "msg"}), f"{what}[{index}]")
        level, msg = item.get("level"), item.get("msg")
        if type(level) is not str or level not in LOG_LEVELS:
            raise ReplyRefused(
                ErrorCode.BAD_OUTPUT, f"{what}[{index}].level must be one of {', '.join(sorted(LOG_LEVELS))}"
            )
        if type(msg) is not str:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}[{index}].msg must be a string")
        if len(msg) > max_chars:
            raise ReplyRefused(
                ErrorCode.OUTPUT_LIMIT, f"{what}[{index}].msg is longer than {max_chars} characters"
            )
        problem = text_problem(msg)
        if problem:
            raise ReplyRefused(ErrorCode.BAD_OUTPUT, f"{what}[{index}].msg {problem}")
    return value


def _short_text(value: Any, limit: int) -> bool:
    return type(value) is str and len(value) <= limit and text_problem(value) is None


def _number(value: Any) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value) and value > 0
