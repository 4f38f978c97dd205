"""Unified diffs of strategy versions, computed once per pair of contents.

Versions are immutable, so a diff is a pure function of the two texts: it is cached (Django's
cache, Redis) under the texts' digest. A diff of two large versions cost seconds of CPU on every
GET; now it costs that once, and the per-user `diffs` throttle bounds how many distinct pairs a
caller can make the server compute.
"""

from __future__ import annotations

import difflib
import hashlib

from django.core.cache import cache

CACHE_SECONDS = 24 * 3600


def unified_diff(old: str, new: str, *, fromfile: str, tofile: str, keepends: bool = True) -> str:
    """`difflib.unified_diff` as one string (lines kept with their ends, or joined by newlines)."""
    digest = hashlib.sha256(
        "\x00".join((old, new, fromfile, tofile, "k" if keepends else "n")).encode("utf-8", "surrogatepass")
    ).hexdigest()
    key = f"strategies:diff:{digest}"
    cached = cache.get(key)
    if cached is not None:
        return str(cached)
    if keepends:
        text = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=fromfile, tofile=tofile
            )
        )
    else:
        text = "\n".join(
            difflib.unified_diff(
                old.splitlines(), new.splitlines(), fromfile=fromfile, tofile=tofile, lineterm=""
            )
        )
    cache.set(key, text, CACHE_SECONDS)
    return text
