"""Upload-time validation of strategy source (``validate_source``), run inside a host process.

Parsing and compiling hostile source is untrusted work (a deeply nested file exhausts the
recursion limit or memory), so the size check runs here and everything else in a single-use
host process; nothing of the user's code is executed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import SandboxError
from sandbox.limits import Limits
from sandbox.policy import ALLOWED_IMPORTS

__all__ = ["ALLOWED_IMPORTS", "Issue", "ValidationReport", "validate_source"]


@dataclass(frozen=True)
class Issue:
    """One problem: a stable code, a message, 1-based line/column where known."""

    code: str
    message: str
    line: int | None = None
    col: int | None = None


@dataclass
class ValidationReport:
    ok: bool
    errors: list[Issue] = field(default_factory=list)
    config_schema: dict[str, Any] = field(default_factory=dict)
    class_name: str | None = None
    imports: list[str] = field(default_factory=list)


class _Validator:
    """Single-use validation hosts with one pre-spawned spare."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spare: Any = None
        self._limits: Limits | None = None

    def run(self, msg: dict[str, Any], limits: Limits) -> Any:
        from sandbox.client import _Host

        with self._lock:
            host = self._spare if self._spare is not None and self._spare.alive() and self._limits == limits else None
            if host is None:
                if self._spare is not None:
                    self._spare.kill()
                host = _Host(limits)
            self._spare = None
            try:
                return host.request(msg, limits.validate_timeout, "validation")
            finally:
                host.kill()
                self._spare = _Host(limits)
                self._limits = limits

    def close(self) -> None:
        with self._lock:
            if self._spare is not None:
                self._spare.kill()
                self._spare = None


_VALIDATOR = _Validator()


def _issue(raw: Any) -> Issue:
    if not isinstance(raw, dict):
        return Issue("HOST_CRASHED", "malformed issue from the validation host")
    line, col = raw.get("line"), raw.get("col")
    return Issue(str(raw.get("code", "UNKNOWN"))[:64], str(raw.get("message", ""))[:2000],
                 line if type(line) is int else None, col if type(col) is int else None)


def validate_source(source: str, *, style: str = "tick", filename: str = "strategy.py", limits: Limits | None = None) -> ValidationReport:
    """Check an uploaded file without executing it. Styles: tick, signal, signal_entry, signal_exit."""
    limits = limits or Limits()
    if not isinstance(source, str):
        return ValidationReport(False, [Issue("COMPILE_ERROR", "source must be text")])
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limits.max_source_bytes:
        return ValidationReport(False, [Issue("TOO_LARGE", f"{filename} is {size} bytes; the limit is {limits.max_source_bytes // 1024} KiB")])
    try:
        raw = _VALIDATOR.run({"cmd": "validate", "source": source, "style": style, "filename": filename,
                              "budget": limits.validate_timeout}, limits)
    except SandboxError as exc:
        code = "TOO_DEEP" if exc.code in ("MEMORY_LIMIT", "TIMEOUT", "HOST_CRASHED") else str(exc.code)
        return ValidationReport(False, [Issue(code, f"{filename} could not be compiled: {exc.message}")])
    if not isinstance(raw, dict):
        return ValidationReport(False, [Issue("HOST_CRASHED", "malformed report from the validation host")])
    errors = [_issue(i) for i in raw.get("errors") or []][:200]
    raw_schema = raw.get("config_schema")
    schema: dict[str, Any] = raw_schema if isinstance(raw_schema, dict) else {}
    raw_class = raw.get("class_name")
    class_name = raw_class if isinstance(raw_class, str) else None
    imports = [str(i) for i in raw.get("imports") or [] if isinstance(i, str)]
    return ValidationReport(not errors and raw.get("ok") is True, errors, schema, class_name, imports)
