"""Latest quotes, kept in Redis so every worker on every machine reads the same price.

One key per market (`quote:<market_id>`), a JSON object
`{"market": "SIM:BTC/USDT", "price": float, "bid": float, "ask": float, "volume": float, "ts": float}`
(replayed bars add open/high/low/close). Quotes expire after `QUOTE_TTL_SECONDS` so a dead feed
shows up as "no quote" (the risk gate then denies market orders) instead of a stale price.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

import redis
from django.conf import settings

QUOTE_TTL_SECONDS = 300
_KEY = "quote:{}"
# The recent prices of each market ("<ts> <price>", newest first), for the dashboard's candles:
# a capped list, so it costs one LPUSH + LTRIM per quote and never grows.
_HISTORY_KEY = "quote-history:{}"
HISTORY_LENGTH = 3600

_client: redis.Redis | None = None
_client_pid: int | None = None


def redis_client() -> redis.Redis:
    """A process-wide client (its pool is rebuilt after a fork, e.g. in Celery prefork children)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(settings.REDIS_URL)
        _client_pid = os.getpid()
    return _client


def quote_is_valid(quote: Any) -> bool:
    """True when the quote has finite, positive price/bid/ask with bid <= ask."""
    if not isinstance(quote, dict):
        return False
    try:
        values = [quote["price"], quote["bid"], quote["ask"]]
    except KeyError:
        return False
    if not all(type(v) in (int, float) for v in values):
        return False
    if not all(math.isfinite(v) and v > 0 for v in values):
        return False
    return quote["bid"] <= quote["ask"]


def quote_set(market_id: int, quote: dict[str, Any]) -> None:
    if not quote_is_valid(quote):
        raise ValueError(f"invalid quote for market {market_id}: {quote!r}")
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(_KEY.format(market_id), json.dumps(quote), ex=QUOTE_TTL_SECONDS)
    _remember(pipe, market_id, quote)
    pipe.execute()


def _remember(pipe: Any, market_id: int, quote: dict[str, Any]) -> None:
    ts = quote.get("ts")
    if type(ts) not in (int, float) or not math.isfinite(ts):
        return
    key = _HISTORY_KEY.format(market_id)
    pipe.lpush(key, f"{float(ts):.3f} {float(quote['price'])!r}")
    pipe.ltrim(key, 0, HISTORY_LENGTH - 1)
    pipe.expire(key, QUOTE_TTL_SECONDS * 12)


def quote_history(market_id: int) -> list[tuple[float, float]]:
    """The market's recent (ts, price) quotes, oldest first (at most HISTORY_LENGTH)."""
    points = []
    for raw in reversed(redis_client().lrange(_HISTORY_KEY.format(market_id), 0, -1)):
        ts, _, price = raw.decode().partition(" ")
        try:
            points.append((float(ts), float(price)))
        except ValueError:
            continue
    return points


def quotes_set_many(quotes: dict[int, dict[str, Any]]) -> None:
    """Store several quotes in one round trip."""
    pipe = redis_client().pipeline(transaction=False)
    for market_id, quote in quotes.items():
        if not quote_is_valid(quote):
            raise ValueError(f"invalid quote for market {market_id}: {quote!r}")
        pipe.set(_KEY.format(market_id), json.dumps(quote), ex=QUOTE_TTL_SECONDS)
        _remember(pipe, market_id, quote)
    pipe.execute()


def quote_get(market_id: int) -> dict[str, Any] | None:
    raw = redis_client().get(_KEY.format(market_id))
    return json.loads(raw) if raw else None


def quotes_get_many(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Latest quotes of several markets in one round trip; markets without a quote are absent."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return {}
    raws = redis_client().mget([_KEY.format(i) for i in ids])
    return {i: json.loads(raw) for i, raw in zip(ids, raws, strict=True) if raw}
