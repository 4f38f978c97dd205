"""What PostgreSQL cannot store, found before a batch write instead of failing it.

`jsonb` refuses the escape `\\u0000` and unpaired UTF-16 surrogates; `text` refuses NUL. A strategy
can put either into its state, a log line or an order tag. The sandbox refuses them too, but the
engine does not depend on that: multi-tenant batch writes check each row first (one tenant's bad
row must never fail everyone's write), and display text is cleaned on the way in.
"""

from __future__ import annotations

import json
import re
from typing import Any

REPLACEMENT = "\ufffd"
# In JSON text as `runtime.dumps` writes it (ASCII only): NUL, or a surrogate escape. Pairs are
# fine; the slow path decides.
_SUSPECT_JSON = re.compile(r"\\u0000|\\ud[89a-f]", re.IGNORECASE)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def _what(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    if _BAD_CHARS.search(text):
        return "contains an unpaired surrogate"
    return None


def unstorable_path(value: Any, path: str = "$") -> tuple[str, str] | None:
    """The JSON path of the first string (or key) PostgreSQL cannot store, and why; None if none."""
    if isinstance(value, str):
        what = _what(value)
        return (path, what) if what else None
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = str(key)
            where = f"{path}.{clean_text(key_text)[:60]}"
            what = _what(key_text)
            if what:
                return where, f"has a key that {what}"
            found = unstorable_path(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = unstorable_path(item, f"{path}[{index}]")
            if found:
                return found
    return None


def unstorable_json_text(text: str | None) -> tuple[str, str] | None:
    """`unstorable_path` of JSON text, cheap for the common case (one regex scan, no parse)."""
    if not text or ("\x00" not in text and not _SUSPECT_JSON.search(text)):
        return None
    try:
        return unstorable_path(json.loads(text))
    except ValueError:
        return ("$", "is not valid JSON")


def clean_text(text: str) -> str:
    """Display text (log lines, tags, messages) with NUL and unpaired surrogates replaced by U+FFFD."""
    return _BAD_CHARS.sub(REPLACEMENT, text) if _BAD_CHARS.search(text) else text


def clean_json(value: Any) -> Any:
    """`clean_text` applied to every string and key of a JSON-like value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)) if isinstance(k, str) else k: clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value
