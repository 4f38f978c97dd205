"""Checks on everything user code hands back: state, widgets, signals, log lines.

All checks use *exact* type tests (``type(x) is float``), never ``isinstance``, so a user
subclass with lying ``__eq__``/``__float__``/``__str__`` is refused instead of trusted, and no user
method runs while the host inspects a value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sandbox.errors import ErrorCode, SandboxError

_SCALARS = (int, float, bool, type(None))

# The interpreter refuses to turn longer ints into text (sys.get_int_max_str_digits), so such an
# int could never be written out as JSON: refuse it where it is produced, naming its path.
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS

# What to store instead of a value JSON cannot hold, by type name (shown in BAD_STATE errors).
_STORE_INSTEAD: dict[str, str] = {
    "Decimal": "store str(value) and turn it back with Decimal(text) when you read it",
    "Fraction": "store str(value) and turn it back with Fraction(text) when you read it",
    "deque": "store list(value) and rebuild it with deque(items, maxlen=...) when you read it",
    "datetime": "store value.timestamp() (a float) or value.isoformat() (a string)",
    "date": "store value.isoformat() (a string)",
    "time": "store value.isoformat() (a string)",
    "timedelta": "store value.total_seconds() (a float)",
    "set": "store sorted(value) (a list)",
    "frozenset": "store sorted(value) (a list)",
    "bytes": "store value.hex() (a string)",
    "complex": "store [value.real, value.imag]",
}


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored or sent (PostgreSQL text and UTF-8), or None when it can."""
    if "\x00" in text:
        return "contains a NUL character (\\x00)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode text)"
    return None


def int_problem(value: int) -> str | None:
    if -_INT_LIMIT < value < _INT_LIMIT:
        return None
    return f"is an int of more than {MAX_INT_DIGITS} digits; store it as a string (str(value))"


class _Bad(Exception):
    """A refused node; the path is collected while the exception unwinds (free on the happy path)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def _key_text(key: str) -> str:
    shown = key if len(key) <= 40 else key[:40] + "..."
    return f"[{shown!r}]"


def check_json(value: Any, *, what: str, code: ErrorCode, max_depth: int, max_bytes: int) -> str:
    """Verify ``value`` is plain JSON (finite numbers, str keys, no cycles, bounded depth/size).

    Strings must be storable text (no NUL, no lone surrogates) and ints at most
    :data:`MAX_INT_DIGITS` digits. Errors name the path (``state['prices'][3]``) and, for common
    types, what to store instead. Returns the compact JSON text. Raises ``code`` for shape
    problems, ``OUTPUT_LIMIT`` for size.
    """
    budget = [max(1, max_bytes // 2)]  # node budget: stops pathological wide structures early
    try:
        _walk(value, max_depth, 0, set(), budget)
    except _Bad as bad:
        where = what + "".join(reversed(bad.path))
        raise SandboxError(code, f"{where} {bad.message}") from None
    except _TooLarge:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, f"{what} is too large") from None
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), check_circular=False)
    if len(text) > max_bytes:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, f"{what} is {len(text)} bytes of JSON (limit {max_bytes})")
    return text


class _TooLarge(Exception):
    pass


def _walk(value: Any, max_depth: int, depth: int, active: set[int], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    t = type(value)
    if t is str:
        problem = text_problem(value)
        if problem is not None:
            raise _Bad(problem)
        return
    if t is float:
        if not math.isfinite(value):
            raise _Bad(f"is {value!r}; NaN and Infinity are not JSON: store None, or a string such as 'inf'")
        return
    if t is int:
        problem = int_problem(value)
        if problem is not None:
            raise _Bad(problem)
        return
    if t in _SCALARS:
        return
    if t is dict or t is list or t is tuple:
        if depth >= max_depth:
            raise _Bad(f"is nested more than {max_depth} levels deep")
        ident = id(value)
        if ident in active:
            raise _Bad("is a reference back to a containing object (a cycle)")
        active.add(ident)
        if t is dict:
            for key, item in value.items():
                if type(key) is not str:
                    kt = type(key)
                    hint = (
                        "use str(key) (and int(key) when reading)"
                        if kt is int or kt is float
                        else "use a string"
                    )
                    raise _Bad(
                        f"has a key of type {kt.__name__} ({_plain_repr(key)}); keys must be strings: {hint}"
                    )
                problem = text_problem(key)
                if problem is not None:
                    raise _Bad(f"has a key that {problem}")
                try:
                    _walk(item, max_depth, depth + 1, active, budget)
                except _Bad as bad:
                    bad.path.append(_key_text(key))
                    raise
        else:
            for index, item in enumerate(value):
                try:
                    _walk(item, max_depth, depth + 1, active, budget)
                except _Bad as bad:
                    bad.path.append(f"[{index}]")
                    raise
        active.discard(ident)
        return
    known = t.__module__ in ("builtins", "decimal", "fractions", "collections", "datetime")
    hint = _STORE_INSTEAD.get(t.__name__, "") if known else ""
    if not hint:
        hint = "only dict, list, str, int, float, bool and None can be stored"
    raise _Bad(f"is a value of type {t.__name__}; {hint}")


def _plain_repr(value: Any) -> str:
    """repr of an exact built-in scalar (never a user object's __repr__)."""
    if type(value) in (int, float, bool, type(None)):
        text = repr(value) if type(value) is not int or int_problem(value) is None else "a huge int"
        return text[:40]
    return type(value).__name__


def copy_json(value: Any) -> Any:
    """A deep copy of trusted plain data (snapshot parts handed to user code)."""
    t = type(value)
    if t is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if t is list or t is tuple:
        return [copy_json(v) for v in value]
    return value


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _str(v: Any, limit: int = 500) -> bool:
    return type(v) is str and len(v) <= limit


def check_widgets(payload: Any, *, max_depth: int, max_bytes: int) -> dict[str, Any]:
    """Validate a render() result: ``{"widgets": [...]}`` (a bare list is accepted too)."""
    if type(payload) is list:
        payload = {"widgets": payload}
    if type(payload) is not dict or type(payload.get("widgets")) is not list:
        raise SandboxError(ErrorCode.BAD_OUTPUT, 'render() must return {"widgets": [...]}')
    check_json(
        payload, what="render() output", code=ErrorCode.BAD_OUTPUT, max_depth=max_depth, max_bytes=max_bytes
    )
    widgets = payload["widgets"]
    if len(widgets) > 50:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, "render() returned more than 50 widgets")
    for index, widget in enumerate(widgets):
        problem = _widget_problem(widget)
        if problem:
            raise SandboxError(ErrorCode.BAD_OUTPUT, f"widget {index}: {problem}")
    return {"widgets": widgets}


def _widget_problem(w: Any) -> str | None:
    if type(w) is not dict:
        return "must be an object"
    kind = w.get("type")
    if kind == "line_chart":
        if not _str(w.get("title", "")):
            return "title must be a string"
        series = w.get("series")
        if type(series) is not list or len(series) > 20:
            return "series must be a list of at most 20 series"
        for s in series:
            if type(s) is not dict or not _str(s.get("name")) or type(s.get("points")) is not list:
                return 'each series must be {"name": str, "points": [[x, y], ...]}'
            if len(s["points"]) > 5000:
                return "a series may have at most 5000 points"
            for p in s["points"]:
                if (
                    type(p) not in (list, tuple)
                    or len(p) != 2
                    or not _is_num(p[1])
                    or not (_is_num(p[0]) or _str(p[0], 64))
                ):
                    return "points must be [x, y] pairs of numbers (x may be a string)"
        return None
    if kind == "metric":
        if not _str(w.get("label")):
            return "label must be a string"
        value = w.get("value")
        if not (value is None or _is_num(value) or _str(value) or type(value) is bool):
            return "value must be a number, string, boolean or null"
        if "unit" in w and w["unit"] is not None and not _str(w["unit"], 32):
            return "unit must be a short string"
        return None
    if kind == "table":
        if "title" in w and w["title"] is not None and not _str(w["title"]):
            return "title must be a string"
        columns, rows = w.get("columns"), w.get("rows")
        if type(columns) is not list or not all(_str(c, 100) for c in columns):
            return "columns must be a list of strings"
        if type(rows) is not list or len(rows) > 1000:
            return "rows must be a list of at most 1000 rows"
        for row in rows:
            if type(row) is not list or any(type(c) not in (str, int, float, bool, type(None)) for c in row):
                return "each row must be a list of scalars"
        return None
    if kind == "text":
        return None if _str(w.get("text"), 20000) else "text must be a string"
    if kind == "log":
        lines = w.get("lines")
        if type(lines) is not list or len(lines) > 500 or not all(_str(x, 2000) for x in lines):
            return "lines must be a list of at most 500 strings"
        return None
    return "type must be one of line_chart, metric, table, text, log"
