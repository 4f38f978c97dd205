"""The engine's Redis Lua scripts: one `.lua` file each, its KEYS/ARGV contract at the top."""

from __future__ import annotations

from pathlib import Path

_DIR = Path(__file__).resolve().parent


def lua_source(name: str) -> str:
    """The text of `lua/<name>.lua` (read once, at the importing module's import)."""
    return (_DIR / f"{name}.lua").read_text()
