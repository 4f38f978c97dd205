"""Price feeds: a seeded random walk per market and a replay of stored bars.

`feed_step(now)` advances every active market by one step and stores the quotes in Redis; the
`run_feed` management command calls it once a second, tests call it directly. Which source a
market uses is `Market.feed` (simulated | replay).

Determinism: a `SimulatedFeed` draws from `random.Random(f"{seed}:{market.code}")` (string seeds
hash with SHA-512, independent of PYTHONHASHSEED), so the same seed and market give the same
path on every machine. After a restart the walk continues from the last price stored in Redis.
The replay cursor lives in Redis too (`feed:replay:<market_id>`), so a restarted feed resumes
where it stopped; at the end of the stored bars the replay starts again from the first bar.

A replayed bar becomes the quote a backtest sees for that bar (the live-vs-backtest parity
convention, tests/backtests/test_live_vs_backtest.py): price = bid = ask = close, plus the bar's
open/high/low/close/volume and `bar_ts`. A bar carries no spread, so none is invented: the paper
broker then fills a market order at close x (1 +/- slippage_bps), exactly like the backtest.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from stratbox.markets.models import Bar, FeedSource, Market
from stratbox.markets.quotes import quote_get, quotes_set_many, redis_client

_REPLAY_CURSOR = "feed:replay:{}"


def _tick_decimals(tick: Decimal) -> int:
    exponent = tick.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _round_to_tick(value: float, tick: float, decimals: int) -> float:
    return round(round(value / tick) * tick, decimals)


class SimulatedFeed:
    """Geometric random walk: each step multiplies the price by exp(N(0, market.sim_volatility))."""

    def __init__(self, market: Market, seed: int | str, *, start_price: float | None = None) -> None:
        self.market_id = market.pk
        self.code = market.code
        self.volatility = float(market.sim_volatility)
        self.tick = float(market.tick_size)
        self.decimals = _tick_decimals(market.tick_size)
        self.rng = random.Random(f"{seed}:{market.code}")
        self.price = float(start_price if start_price is not None else market.sim_start_price)

    def next_quote(self, ts: float) -> dict[str, Any]:
        self.price *= math.exp(self.rng.gauss(0.0, self.volatility))
        price = max(_round_to_tick(self.price, self.tick, self.decimals), self.tick)
        # Spread of ~2 bp, at least one tick, centred on the last price.
        spread = max(self.tick, _round_to_tick(price * 0.0002, self.tick, self.decimals))
        bid = max(_round_to_tick(price - spread / 2, self.tick, self.decimals), self.tick)
        ask = round(bid + spread, self.decimals)
        volume = round(self.rng.expovariate(1.0) * 10, 4)
        return {
            "market": self.code,
            "market_id": self.market_id,
            "price": price,
            "bid": bid,
            "ask": ask,
            "volume": volume,
            "ts": float(ts),
        }


class ReplayFeed:
    """Replays stored bars in order, one bar per step; each quote is the bar's close (bid = ask = close)."""

    def __init__(self, market: Market, bars: list[Bar] | list[dict[str, Any]], *, position: int = 0) -> None:
        self.market_id = market.pk
        self.code = market.code
        self.bars = [self._as_dict(b) for b in bars]
        self.position = position

    @staticmethod
    def _as_dict(bar: Bar | dict[str, Any]) -> dict[str, Any]:
        if isinstance(bar, dict):
            return bar
        return {
            "ts": bar.ts.timestamp(),
            "open": float(bar.open),
            "high": float(bar.high),
            "low": float(bar.low),
            "close": float(bar.close),
            "volume": float(bar.volume),
        }

    def next_quote(self, ts: float) -> dict[str, Any] | None:
        if not self.bars:
            return None
        bar = self.bars[self.position % len(self.bars)]
        self.position += 1
        close = float(bar["close"])
        # No invented spread (a bar has none): a backtest fills this bar at its close, so must we.
        return {
            "market": self.code,
            "market_id": self.market_id,
            "price": close,
            "bid": close,
            "ask": close,
            "volume": float(bar["volume"]),
            "ts": float(ts),
            "bar_ts": float(bar["ts"]),
            "open": float(bar["open"]),
            "high": float(bar["high"]),
            "low": float(bar["low"]),
            "close": close,
        }


@dataclass
class FeedRegistry:
    """The feeds of one feed process (the walk's RNG state is local; prices live in Redis)."""

    seed: int | str = 0
    simulated: dict[int, SimulatedFeed] = field(default_factory=dict)
    replay_bars: dict[int, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)

    def simulated_for(self, market: Market) -> SimulatedFeed:
        feed = self.simulated.get(market.pk)
        if feed is None or feed.volatility != float(market.sim_volatility):
            last = quote_get(market.pk)
            start = float(last["price"]) if last and feed is None else (feed.price if feed else None)
            feed = SimulatedFeed(market, self.seed, start_price=start)
            self.simulated[market.pk] = feed
        return feed

    def replay_for(self, market: Market) -> ReplayFeed:
        bars_qs = Bar.objects.filter(market=market, interval_seconds=market.replay_interval_seconds).order_by(
            "ts"
        )
        count = bars_qs.count()
        cached = self.replay_bars.get(market.pk)
        if cached is None or cached[0] != count:
            cached = (count, [ReplayFeed._as_dict(b) for b in bars_qs])
            self.replay_bars[market.pk] = cached
        # The cursor is a Redis counter: a restarted (or replacement) feed process resumes there.
        position = int(redis_client().incr(_REPLAY_CURSOR.format(market.pk))) - 1
        return ReplayFeed(market, cached[1], position=position)


_default_registry: FeedRegistry | None = None


def default_registry() -> FeedRegistry:
    global _default_registry
    if _default_registry is None:
        _default_registry = FeedRegistry(seed=getattr(settings, "STRATBOX_FEED_SEED", 0))
    return _default_registry


def feed_step(now: float, *, registry: FeedRegistry | None = None) -> list[dict[str, Any]]:
    """Advance every active market one step, store the quotes in Redis (one round trip), return them."""
    registry = registry or default_registry()
    quotes: dict[int, dict[str, Any]] = {}
    # A venue market's quotes come from its venue (stratbox/venues/catalogue.py), not from here.
    for market in Market.objects.filter(active=True).exclude(feed=FeedSource.VENUE).order_by("pk"):
        if market.feed == FeedSource.REPLAY:
            quote = registry.replay_for(market).next_quote(now)
        else:
            quote = registry.simulated_for(market).next_quote(now)
        if quote is not None:
            quotes[market.pk] = quote
    if quotes:
        quotes_set_many(quotes)
    return list(quotes.values())
