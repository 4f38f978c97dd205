"""Upload-time validation of strategy source (``validate_source``), run inside a host process.

Parsing and compiling hostile source is untrusted work (a deeply nested file exhausts the
recursion limit or memory), so the size check runs here and everything else in a single-use
host process, which then trial-loads the file exactly as a run would, under the same budget as a
load (see :mod:`sandbox.analysis`): a file that validates also loads.
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
    """Single-use validation hosts, a few kept warm as spares.

    A validation takes a spare (or starts its own host) and never waits for another validation:
    the lock guards only the list of spares, never a spawn or a request, so one tenant's slow
    upload does not hold up another's.
    """

    def __init__(self, max_spares: int = 2) -> None:
        self._lock = threading.Lock()
        self._spares: list[tuple[Limits, Any]] = []
        self._max_spares = max_spares

    def _take(self, limits: Limits) -> Any:
        from sandbox.client import _Host

        stale: list[Any] = []
        found: Any = None
        with self._lock:
            while self._spares and found is None:
                spare_limits, host = self._spares.pop()
                if spare_limits == limits and host.alive():
                    found = host
                else:
                    stale.append(host)
        for host in stale:
            host.kill()
        return found if found is not None else _Host(limits)

    def _refill(self, limits: Limits) -> None:
        from sandbox.client import _Host

        with self._lock:
            if len(self._spares) >= self._max_spares:
                return
        host = _Host(limits)
        with self._lock:
            if len(self._spares) < self._max_spares:
                self._spares.append((limits, host))
                return
        host.kill()

    def run(self, msg: dict[str, Any], limits: Limits) -> Any:
        host = self._take(limits)
        try:
            # The same budget as a load: validation does the work of one (see sandbox.analysis).
            return host.request(msg, limits.load_timeout, "validation")
        finally:
            host.kill()
            self._refill(limits)

    def close(self) -> None:
        with self._lock:
            spares, self._spares = self._spares, []
        for _limits, host in spares:
            host.kill()


_VALIDATOR = _Validator()


def _issue(raw: Any) -> Issue:
    if not isinstance(raw, dict):
        return Issue("HOST_CRASHED", "malformed issue from the validation host")
    line, col = raw.get("line"), raw.get("col")
    return Issue(
        str(raw.get("code", "UNKNOWN"))[:64],
        str(raw.get("message", ""))[:2000],
        line if type(line) is int else None,
        col if type(col) is int else None,
    )


def validate_source(
    source: str, *, style: str = "tick", filename: str = "strategy.py", limits: Limits | None = None
) -> ValidationReport:
    """Check an uploaded file without executing it. Styles: tick, signal, signal_entry, signal_exit."""
    limits = limits or Limits()
    if not isinstance(source, str):
        return ValidationReport(False, [Issue("COMPILE_ERROR", "source must be text")])
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > limits.max_source_bytes:
        return ValidationReport(
            False,
            [
                Issue(
                    "TOO_LARGE",
                    f"{filename} is {size} bytes; the limit is {limits.max_source_bytes // 1024} KiB",
                )
            ],
        )
    try:
        raw = _VALIDATOR.run(
            {
                "cmd": "validate",
                "source": source,
                "style": style,
                "filename": filename,
                "budget": limits.load_timeout,
            },
            limits,
        )
    except SandboxError as exc:
        if exc.code == "TIMEOUT":
            return ValidationReport(
                False,
                [
                    Issue(
                        "TIMEOUT",
                        f"{filename} does not load within the {limits.load_timeout:g} s "
                        "a load may take (module body, __init__, init(), on_load)",
                    )
                ],
            )
        code = "TOO_DEEP" if exc.code in ("MEMORY_LIMIT", "HOST_CRASHED") else str(exc.code)
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
