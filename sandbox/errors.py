"""Typed, stable error codes for everything that can go wrong while running user strategy code.

Every failure that crosses the sandbox boundary is a :class:`SandboxError` carrying an
:class:`ErrorCode`; the engine and the UI show the code verbatim and never need to parse messages.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable, UPPER_SNAKE failure codes (shown to users and stored with failed runs)."""

    COMPILE_ERROR = "COMPILE_ERROR"  # syntax error in the user's source
    FORBIDDEN = "FORBIDDEN"  # the sandbox policy refused something (compile time or run time)
    RUNTIME_ERROR = "RUNTIME_ERROR"  # the user's code raised
    TIMEOUT = "TIMEOUT"  # the call exceeded its wall/CPU budget; the host was killed
    MEMORY_LIMIT = "MEMORY_LIMIT"  # the call exhausted the host's address-space limit
    OUTPUT_LIMIT = "OUTPUT_LIMIT"  # too many log lines, too large a state/render payload, ...
    BAD_STATE = "BAD_STATE"  # state is not JSON (NaN, cycles, objects, too deep)
    BAD_OUTPUT = "BAD_OUTPUT"  # render()/signals returned something of the wrong shape
    HOST_CRASHED = "HOST_CRASHED"  # the host process died or spoke garbage
    BAD_SCHEMA = "BAD_SCHEMA"  # CONFIG_SCHEMA is not a valid schema literal
    BAD_CONFIG = "BAD_CONFIG"  # config does not satisfy the schema
    TOO_LARGE = "TOO_LARGE"  # source file over the size limit
    TOO_DEEP = "TOO_DEEP"  # source nesting over the limit
    NO_STRATEGY_CLASS = "NO_STRATEGY_CLASS"
    AMBIGUOUS_STRATEGY_CLASS = "AMBIGUOUS_STRATEGY_CLASS"
    MISSING_FUNCTION = "MISSING_FUNCTION"
    NOT_LOADED = "NOT_LOADED"  # the instance is not loaded in this client
    BAD_REQUEST = "BAD_REQUEST"  # the trusted caller passed malformed arguments


class SandboxError(Exception):
    """A classified failure of sandboxed work.

    ``traceback`` only ever contains frames from the user's own files (``strategy.py``,
    ``entry.py``, ``exit.py``); host frames are never shown.
    """

    def __init__(
        self,
        code: ErrorCode | str,
        message: str,
        line: int | None = None,
        traceback: str | None = None,
    ) -> None:
        self.code: ErrorCode = ErrorCode(code)
        self.message: str = message
        self.line: int | None = line
        self.traceback: str | None = traceback
        super().__init__(f"{self.code}: {message}" + (f" (line {line})" if line else ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "message": self.message,
            "line": self.line,
            "traceback": self.traceback,
        }

    @classmethod
    def from_dict(cls, data: object) -> SandboxError:
        """Rebuild an error sent by a host; anything malformed becomes HOST_CRASHED."""
        if type(data) is not dict:
            return cls(ErrorCode.HOST_CRASHED, "host sent a malformed error")
        code = data.get("code")
        message = data.get("message")
        line = data.get("line")
        tb = data.get("traceback")
        if type(code) is not str or code not in ErrorCode.__members__ or type(message) is not str:
            return cls(ErrorCode.HOST_CRASHED, "host sent a malformed error")
        return cls(
            ErrorCode(code),
            _storable(message[:4000]),
            line if type(line) is int and 0 < line < 10_000_000 else None,
            _storable(tb[:20000]) if type(tb) is str else None,
        )


def _storable(text: str) -> str:
    """A host's text with NUL and lone surrogates replaced: it is stored and shown, and PostgreSQL
    refuses both (a forged error report must not fail the write that records it)."""
    if "\x00" not in text and (text.isascii() or _utf8(text)):
        return text
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
