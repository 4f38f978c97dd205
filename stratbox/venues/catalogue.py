"""Market data from venues into the platform: catalogue sync, live quotes, historical bars.

- `catalogue_sync` upserts one `Market` per venue instrument (symbol, the venue's id, tick, lot,
  hours, status); an instrument the venue no longer lists is kept (instances may name it) but
  marked halted and inactive. Markets are shared by every tenant, so they are synced once.
- `quotes_pump` writes the venue's quotes into the existing quote path (`markets.quotes`), where
  the engine, the risk gate and the dashboard already read them; the simulated feed skips these
  markets (`FeedSource.VENUE`).
- `bars_ensure` fetches a market's bars for a range from its venue only when the stored bars do not
  cover it, and stores them once (the unique (market, interval, ts) constraint makes a concurrent
  second fetch a no-op), so every tenant's backtests share them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from stratbox.markets.models import Bar, FeedSource, Market
from stratbox.markets.quotes import quote_set
from stratbox.venues.base import Quote, StreamHealth, VenueAdapter
from stratbox.venues.health import QUOTE_STREAM_KEY, health_publish

log = logging.getLogger(__name__)


# What a sync writes on every market the venue lists (the keys of `values` below).
_CATALOGUE_FIELDS = [
    "venue_symbol",
    "name",
    "tick_size",
    "lot_size",
    "status",
    "trading_hours",
    "active",
    "feed",
    "catalogue_synced_at",
]


@dataclass
class CatalogueSyncResult:
    created: int = 0
    updated: int = 0
    delisted: int = 0


def catalogue_sync(*, adapter: VenueAdapter) -> CatalogueSyncResult:
    instruments = adapter.instruments()
    now = timezone.now()
    listed = {inst.symbol for inst in instruments}
    new: list[Market] = []
    changed: list[Market] = []
    with transaction.atomic():
        existing = {m.symbol: m for m in Market.objects.select_for_update().filter(venue=adapter.venue)}
        for inst in instruments:
            values = {
                "venue_symbol": inst.venue_symbol,
                "name": inst.name[:200],
                "tick_size": inst.tick,
                "lot_size": inst.lot,
                "status": inst.status,
                "trading_hours": inst.hours,
                "active": inst.status == "active",
                "feed": FeedSource.VENUE,
                "catalogue_synced_at": now,
            }
            market = existing.get(inst.symbol)
            if market is None:
                new.append(Market(venue=adapter.venue, symbol=inst.symbol, **values))
                continue
            for field, value in values.items():
                setattr(market, field, value)
            changed.append(market)
        delisted = [m for s, m in existing.items() if s not in listed and m.status != "delisted"]
        for market in delisted:
            market.status, market.active, market.catalogue_synced_at = "delisted", False, now
        # A venue lists thousands of instruments: a statement per batch, not one per market.
        Market.objects.bulk_create(new, batch_size=1000)
        Market.objects.bulk_update(changed, _CATALOGUE_FIELDS, batch_size=500)
        Market.objects.bulk_update(delisted, ["status", "active", "catalogue_synced_at"], batch_size=500)
    return CatalogueSyncResult(created=len(new), updated=len(changed), delisted=len(delisted))


def quote_record(market: Market, quote: Quote) -> dict[str, object]:
    """A venue quote in the quote path's shape (floats in JSON, like every other feed)."""
    return {
        "market": market.code,
        "market_id": market.pk,
        "price": float(quote.price),
        "bid": float(quote.bid),
        "ask": float(quote.ask),
        "volume": 0.0,
        "ts": float(quote.ts),
        "source": "venue",
    }


def quotes_pump(
    *, adapter: VenueAdapter, markets: list[Market], stop: threading.Event, health: StreamHealth | None = None
) -> StreamHealth:
    """Feed these markets' quotes from their venue until `stop` is set (the venue feed process's loop)."""
    health = health or StreamHealth()
    by_symbol = {m.symbol: m for m in markets if m.venue == adapter.venue}

    def on_quote(quote: Quote) -> None:
        market = by_symbol.get(quote.symbol)
        if market is None:
            return
        try:
            quote_set(market.pk, quote_record(market, quote))
        except ValueError as exc:  # a crossed or non-positive quote: not stored, reported
            health.errors = [*health.errors[-9:], str(exc)]

    key = QUOTE_STREAM_KEY.format(venue=adapter.venue)
    done = threading.Event()  # the stream returned (stopped) or raised: the heartbeat ends either way
    heartbeat = threading.Thread(
        target=_heartbeat, args=(key, health, done), name="quote-stream-health", daemon=True
    )
    heartbeat.start()
    try:
        adapter.stream_quotes(sorted(by_symbol), on_quote, stop, health)
    finally:
        done.set()
        heartbeat.join(timeout=10)
        _publish_quietly(key, health, stopped=stop.is_set())
    return health


def _heartbeat(key: str, health: StreamHealth, done: threading.Event, every: float = 5.0) -> None:
    """The quote stream's health in Redis every few seconds, for the instance pages (venues/health.py)."""
    _publish_quietly(key, health)
    while not done.wait(every):
        _publish_quietly(key, health)


def _publish_quietly(key: str, health: StreamHealth, *, stopped: bool = False) -> None:
    try:
        health_publish(key, health, stopped=stopped)
    except Exception:  # Redis away: the quotes matter more than their health record
        log.warning("quote stream health could not be published", exc_info=True)


def bars_ensure(
    *, adapter: VenueAdapter, market: Market, interval_seconds: int, start: datetime, end: datetime
) -> int:
    """Make the stored bars cover [start, end]; returns how many bars were fetched and stored."""
    stored = Bar.objects.filter(
        market=market, interval_seconds=interval_seconds, ts__gte=start, ts__lte=end
    ).aggregate(first=Min("ts"), last=Max("ts"), n=Count("id"))
    step = timedelta(seconds=interval_seconds)
    if stored["n"] and stored["first"] - start < step and end - stored["last"] < step:
        return 0
    bars = adapter.bars(market.symbol, interval_seconds=interval_seconds, start=start, end=end)
    rows = [
        Bar(
            market=market,
            ts=b.ts,
            interval_seconds=interval_seconds,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
        )
        for b in bars
        if b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) and b.low > 0
    ]
    before = Bar.objects.filter(market=market, interval_seconds=interval_seconds).count()
    Bar.objects.bulk_create(rows, batch_size=2000, ignore_conflicts=True)
    return Bar.objects.filter(market=market, interval_seconds=interval_seconds).count() - before
