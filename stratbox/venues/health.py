"""Venue stream heartbeats in Redis, for the dashboard: the processes that stream from a venue (the
venue feed's quote stream, each live account's user stream) publish their `StreamHealth` every few
seconds under a key that expires; the web reads it back and never talks to the venue itself.

A record is a hash: connects, drops, reports, polling, last_event_at, updated_at (epoch seconds) and
the last errors (newline separated; venue messages, never credentials).
"""

from __future__ import annotations

import time
from typing import Any

from stratbox.markets.quotes import redis_client
from stratbox.venues.base import StreamHealth

QUOTE_STREAM_KEY = "stratbox:venue:quotestream:{venue}"
HEALTH_TTL_SECONDS = 300
# A publisher writes every 5 s: a record older than this belongs to a process that stopped or hangs.
STALE_AFTER_SECONDS = 20.0


def health_publish(
    key: str, health: StreamHealth, *, reports: int | None = None, stopped: bool = False
) -> None:
    """Publish a stream's health; `stopped` for the last record of a stream that ended cleanly."""
    mapping: dict[str, Any] = {
        "stopped": int(stopped),
        "connects": health.connects,
        "drops": health.drops,
        "polling": int(health.polling),
        "last_event_at": health.last_quote_ts or "",
        "updated_at": time.time(),
        "errors": "\n".join(health.errors[-5:]),
    }
    if reports is not None:
        mapping["reports"] = reports
    pipe = redis_client().pipeline()
    pipe.hset(key, mapping=mapping)
    pipe.expire(key, HEALTH_TTL_SECONDS)
    pipe.execute()


def health_read(key: str) -> dict[str, Any] | None:
    """The last record published under `key` (None: no stream published one lately)."""
    stored = redis_client().hgetall(key)
    if not stored:
        return None
    raw = {_text(k): _text(v) for k, v in stored.items()}
    return {
        "connects": int(raw.get("connects") or 0),
        "drops": int(raw.get("drops") or 0),
        "reports": int(raw.get("reports") or 0),
        "polling": raw.get("polling") == "1",
        "stopped": raw.get("stopped") == "1",
        "last_event_at": float(raw["last_event_at"]) if raw.get("last_event_at") else None,
        "updated_at": float(raw.get("updated_at") or 0),
        "errors": [e for e in (raw.get("errors") or "").split("\n") if e],
    }


def stream_state(record: dict[str, Any] | None, *, now: float | None = None) -> dict[str, Any]:
    """A health record as the UI words it: `state` is connected | reconnecting | polling (the REST
    fallback feeds quotes) | stale (the publisher went quiet) | stopped | not running; `reconnects` counts the
    connections after the first."""
    if record is None:
        return {
            "state": "not running",
            "connects": 0,
            "drops": 0,
            "reconnects": 0,
            "reports": 0,
            "polling": False,
            "stopped": False,
            "last_event_at": None,
            "updated_at": None,
            "errors": [],
        }
    now = time.time() if now is None else now
    if record.get("stopped"):
        state = "stopped"
    elif now - record["updated_at"] > STALE_AFTER_SECONDS:
        state = "stale"
    elif record["connects"] > record["drops"]:
        state = "connected"
    elif record.get("polling"):
        state = "polling"
    else:
        state = "reconnecting"
    return {
        **record,
        "state": state,
        "reconnects": max(record["connects"] - 1, 0),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
