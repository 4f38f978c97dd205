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

_SCALARS = (str, int, float, bool, type(None))


def check_json(value: Any, *, what: str, code: ErrorCode, max_depth: int, max_bytes: int) -> str:
    """Verify ``value`` is plain JSON (finite numbers, str keys, no cycles, bounded depth/size).

    Returns the compact JSON text. Raises ``code`` for shape problems, ``OUTPUT_LIMIT`` for size.
    """
    budget = [max(1, max_bytes // 2)]  # node budget: stops pathological wide structures early
    _walk(value, what, code, max_depth, 0, set(), budget)
    text = json.dumps(value, allow_nan=False, separators=(",", ":"), check_circular=False)
    if len(text) > max_bytes:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, f"{what} is {len(text)} bytes of JSON (limit {max_bytes})")
    return text


def _walk(value: Any, what: str, code: ErrorCode, max_depth: int, depth: int, active: set[int], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise SandboxError(ErrorCode.OUTPUT_LIMIT, f"{what} is too large")
    t = type(value)
    if t is float:
        if not math.isfinite(value):
            raise SandboxError(code, f"{what} contains {value!r}; NaN and Infinity are not JSON")
        return
    if t in _SCALARS:
        return
    if t is dict or t is list or t is tuple:
        if depth >= max_depth:
            raise SandboxError(code, f"{what} is nested more than {max_depth} levels deep")
        ident = id(value)
        if ident in active:
            raise SandboxError(code, f"{what} contains a reference cycle")
        active.add(ident)
        if t is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise SandboxError(code, f"{what} has a non-string key of type {type(key).__name__}")
                _walk(item, what, code, max_depth, depth + 1, active, budget)
        else:
            for item in value:
                _walk(item, what, code, max_depth, depth + 1, active, budget)
        active.discard(ident)
        return
    raise SandboxError(code, f"{what} contains a {t.__name__} object; only dict, list, str, int, float, bool and None are allowed")


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
    check_json(payload, what="render() output", code=ErrorCode.BAD_OUTPUT, max_depth=max_depth, max_bytes=max_bytes)
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
                if type(p) not in (list, tuple) or len(p) != 2 or not _is_num(p[1]) or not (_is_num(p[0]) or _str(p[0], 64)):
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
