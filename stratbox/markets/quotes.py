"""Latest quotes, kept in Redis so every worker on every machine reads the same price.

One key per market (`quote:<market_id>`), a JSON object
`{"market": "SIM:BTC/USDT", "price": float, "bid": float, "ask": float, "volume": float, "ts": float}`
(replayed bars add open/high/low/close). Quotes expire after `QUOTE_TTL_SECONDS` so a dead feed
shows up as "no quote" (the risk gate then denies market orders) instead of a stale price.

Whoever needs to act on a new quote registers a listener (`quote_listen`): it adds its commands
to the pipeline that stores the quotes, so acting costs no extra round trip. The engine marks the
quote-triggered instances of the market due this way (markets sits below the engine and never
imports it).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import redis
from django.conf import settings

QUOTE_TTL_SECONDS = 300
_KEY = "quote:{}"
# The recent quotes of each market, newest first, for the dashboard's candles and strategies'
# `context.history`: "<ts> <price> <open> <high> <low> <volume> <bar ts>" (a live quote is a bar
# with open = high = low = its price; a replayed bar keeps its own; <bar ts> is the time a tick
# carries). A capped list, so it costs one LPUSH + LTRIM per quote and never grows.
_HISTORY_KEY = "quote-history:{}"
HISTORY_LENGTH = 3600
BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")

QuoteListener = Callable[[Any, dict[int, dict[str, Any]]], None]  # (pipeline, {market id: quote})
_listeners: list[QuoteListener] = []


def quote_listen(listener: QuoteListener) -> None:
    """Call `listener(pipeline, quotes)` whenever quotes are stored (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def _notify(pipe: Any, quotes: dict[int, dict[str, Any]]) -> None:
    for listener in _listeners:
        listener(pipe, quotes)


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
    _notify(pipe, {market_id: quote})
    pipe.execute()


def _remember(pipe: Any, market_id: int, quote: dict[str, Any]) -> None:
    ts = quote.get("ts")
    if type(ts) not in (int, float) or not math.isfinite(ts):
        return
    key = _HISTORY_KEY.format(market_id)
    price = float(quote["price"])
    bar = [_finite(quote.get(name), price) for name in ("open", "high", "low")]
    volume = _finite(quote.get("volume"), 0.0)
    bar_ts = _finite(quote.get("bar_ts"), float(ts))
    pipe.lpush(key, f"{float(ts):.3f} {price!r} {bar[0]!r} {bar[1]!r} {bar[2]!r} {volume!r} {bar_ts!r}")
    pipe.ltrim(key, 0, HISTORY_LENGTH - 1)
    pipe.expire(key, QUOTE_TTL_SECONDS * 12)


def _finite(value: Any, default: float) -> float:
    return float(value) if type(value) in (int, float) and math.isfinite(value) else default


def quote_history(market_id: int) -> list[tuple[float, float]]:
    """The market's recent (ts, price) quotes, oldest first (at most HISTORY_LENGTH)."""
    points = []
    for raw in reversed(redis_client().lrange(_HISTORY_KEY.format(market_id), 0, -1)):
        ts, price = (raw.decode().split(" ") + ["", ""])[:2]
        try:
            points.append((float(ts), float(price)))
        except ValueError:
            continue
    return points


def market_bars_recent(market_ids: Iterable[int], n: int) -> dict[int, dict[str, list[float]]]:
    """The last ``n`` quotes of each market as bar columns (ts, open, high, low, close, volume),
    oldest first -- what ``context.history`` serves. One Redis round trip for all the markets."""
    ids = list(dict.fromkeys(market_ids))
    if not ids:
        return {}
    pipe = redis_client().pipeline(transaction=False)
    for market_id in ids:
        pipe.lrange(_HISTORY_KEY.format(market_id), 0, n - 1)
    out: dict[int, dict[str, list[float]]] = {}
    for market_id, raws in zip(ids, pipe.execute(), strict=True):
        cols: dict[str, list[float]] = {name: [] for name in BAR_FIELDS}
        for raw in reversed(raws):
            parts = raw.decode().split(" ")
            if len(parts) < 7:
                continue  # written before bars were kept: a price alone is no bar
            try:
                _ts, close, open_, high, low, volume, bar_ts = map(float, parts[:7])
            except ValueError:
                continue
            for name, value in zip(BAR_FIELDS, (bar_ts, open_, high, low, close, volume), strict=True):
                cols[name].append(value)
        out[market_id] = cols
    return out


def quotes_set_many(quotes: dict[int, dict[str, Any]]) -> None:
    """Store several quotes in one round trip."""
    pipe = redis_client().pipeline(transaction=False)
    for market_id, quote in quotes.items():
        if not quote_is_valid(quote):
            raise ValueError(f"invalid quote for market {market_id}: {quote!r}")
        pipe.set(_KEY.format(market_id), json.dumps(quote), ex=QUOTE_TTL_SECONDS)
        _remember(pipe, market_id, quote)
    _notify(pipe, quotes)
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
