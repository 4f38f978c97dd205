"""Per venue-account rate limiting shared by every worker: a token bucket in Redis.

One bucket per venue account (`venue-bucket:<key>`, a hash of tokens and the last refill time),
refilled at `rate` tokens per second up to `burst`, taken atomically by a Lua script
(lua/token_bucket.lua), so any number of processes on any number of machines using one API key
stay within the venue's limit.

A 429 from the venue (its `Retry-After`) pauses the whole account: `penalise` empties the bucket
and stores a "not before" time every process honours before it takes a token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import redis

from stratbox.venues.base import VENUE_RATE_LIMITED, VenueError

_TAKE = (Path(__file__).resolve().parent / "lua" / "token_bucket.lua").read_text()


@dataclass
class TokenBucket:
    client: redis.Redis
    key: str  # e.g. "alpaca:paper:<api key id digest>"
    rate: float  # tokens per second
    burst: float
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        self._script = self.client.register_script(_TAKE)

    @property
    def redis_key(self) -> str:
        return f"venue-bucket:{self.key}"

    def take(self, cost: float = 1.0) -> float:
        """Block until a token is ours; returns the seconds waited. Raises VENUE_RATE_LIMITED past max_wait."""
        waited = 0.0
        while True:
            # One round trip: the script reads Redis' clock itself, which every process agrees on.
            wait = float(self._script(keys=[self.redis_key], args=[self.rate, self.burst, cost]))
            if wait <= 0:
                return waited
            if waited + wait > self.max_wait:
                raise VenueError(
                    VENUE_RATE_LIMITED, f"the venue account's request budget is spent for {wait:.1f}s"
                )
            time.sleep(wait)
            waited += wait

    def penalise(self, retry_after: float) -> None:
        """The venue answered 429: nobody on this account sends before Retry-After has passed."""
        seconds, micros = self.client.time()
        until = seconds + micros / 1e6 + max(retry_after, 0.0)
        self.client.hset(self.redis_key, mapping={"tokens": "0", "blocked_until": str(until)})
        self.client.expire(self.redis_key, int(retry_after) + 60)
