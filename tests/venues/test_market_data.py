"""Venue market data into the platform: catalogue sync, quotes into the quote path, bars stored once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stratbox.backtests.services import BarsSpec, backtest_create
from stratbox.markets.feeds import feed_step
from stratbox.markets.models import Bar, FeedSource, Market
from stratbox.markets.quotes import quote_get
from stratbox.venues.alpaca import US_EQUITY_SESSION
from stratbox.venues.base import StreamHealth
from stratbox.venues.catalogue import bars_ensure, catalogue_sync, quotes_pump
from stratbox.venues.health import QUOTE_STREAM_KEY, health_read, stream_state
from stratbox.venues.registry import brokers_for_venue
from tests.backtests.conftest import make_version
from tests.venues.conftest import SimVenue
from tests.venues.test_adapters import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NOOP_SOURCE = """
from sandbox.sdk import Strategy


class Noop(Strategy):
    def on_tick(self, tick):
        pass
"""


def test_catalogue_sync_creates_updates_and_delists_markets(sim: SimVenue) -> None:
    adapter = sim.adapter()
    first = catalogue_sync(adapter=adapter)
    assert (first.created, first.updated, first.delisted) == (2, 0, 0)
    market = Market.objects.get(venue=adapter.venue, symbol=sim.symbol)
    inst = sim.venue.instruments[sim.venue_symbol]
    assert (market.venue_symbol, market.tick_size, market.lot_size) == (sim.venue_symbol, inst.tick, inst.lot)
    assert market.status == "active" and market.active and market.feed == FeedSource.VENUE
    listed = {i.symbol: i for i in adapter.instruments()}[sim.symbol]
    assert market.trading_hours == listed.hours and market.trading_hours in ({}, US_EQUITY_SESSION)

    inst.tick = Decimal("0.05")
    other = [s for s in sim.venue.instruments if s != sim.venue_symbol][0]
    del sim.venue.instruments[other]
    again = catalogue_sync(adapter=sim.adapter())
    assert (again.created, again.updated, again.delisted) == (0, 1, 1)
    market.refresh_from_db()
    assert market.tick_size == Decimal("0.05")
    gone = Market.objects.get(venue=adapter.venue, venue_symbol=other)
    assert gone.status == "delisted" and not gone.active


def test_a_venue_configured_around_the_clock_lists_markets_that_never_close(
    alpaca: SimVenue, settings: Any
) -> None:
    """The demo's simulated Alpaca (`hours: {}`) trades at any hour; Alpaca's US equities otherwise
    keep the New York session, which the order model enforces (MARKET_CLOSED outside it)."""
    sync = catalogue_sync(adapter=alpaca.adapter())
    market = Market.objects.get(venue="ALPACA", symbol="AAPL")
    assert sync.created and market.trading_hours == US_EQUITY_SESSION
    settings.STRATBOX_VENUES = {**settings.STRATBOX_VENUES, alpaca.name: {**alpaca.config, "hours": {}}}
    catalogue_sync(adapter=alpaca.adapter())
    market.refresh_from_db()
    assert market.trading_hours == {}


def test_synced_markets_are_searchable_in_the_api(alpaca: SimVenue, api_client: Any) -> None:
    catalogue_sync(adapter=alpaca.adapter())
    Market.objects.create(venue="SIM", symbol="BTC/USDT")
    body = api_client.get("/api/v1/markets/", {"search": "apple"}).json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [r["symbol"] for r in rows] == ["AAPL"]
    assert rows[0]["name"] == "Apple Inc. Common Stock" and rows[0]["status"] == "active"


def test_venue_quotes_flow_into_the_quote_path_and_the_simulated_feed_leaves_them_alone(
    alpaca: SimVenue,
) -> None:
    adapter = alpaca.adapter()
    catalogue_sync(adapter=adapter)
    market = Market.objects.get(venue="ALPACA", symbol="AAPL")
    stop, health = threading.Event(), StreamHealth()
    thread = threading.Thread(
        target=quotes_pump,
        kwargs={"adapter": adapter, "markets": [market], "stop": stop, "health": health},
        daemon=True,
    )
    thread.start()
    try:
        alpaca.venue.set_quote("AAPL", Decimal("200.00"), Decimal("200.04"))
        quote = wait_for(lambda: (q := quote_get(market.pk)) and q["bid"] == 200.0 and q)
        assert quote["ask"] == 200.04 and quote["price"] == 200.02 and quote["market"] == "ALPACA:AAPL"
        feed_step(1.0)  # the simulated feed must not overwrite a venue's quote
        assert quote_get(market.pk)["bid"] == 200.0
        alpaca.venue.inject("drop_websocket")
        alpaca.venue.set_quote("AAPL", Decimal("201.00"), Decimal("201.04"))
        wait_for(lambda: quote_get(market.pk)["bid"] == 201.0)
    finally:
        stop.set()
        thread.join(timeout=30)
    # The feed's heartbeat for the instance pages: its counters as the stream kept them, a clean stop said so.
    published = stream_state(health_read(QUOTE_STREAM_KEY.format(venue="ALPACA")))
    assert (published["connects"], published["drops"]) == (health.connects, health.drops)
    assert published["connects"] >= 1 and published["state"] == "stopped"
    assert published["last_event_at"] == health.last_quote_ts


def test_bars_are_fetched_once_and_shared(binance: SimVenue) -> None:
    adapter = binance.adapter()
    catalogue_sync(adapter=adapter)
    market = Market.objects.get(venue="BINANCE", symbol="BTC/USDT")
    end = datetime.now(tz=UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    start = end - timedelta(hours=3)
    stored = bars_ensure(adapter=adapter, market=market, interval_seconds=60, start=start, end=end)
    assert stored == 181
    klines = sum(1 for r in binance.venue.requests if r[2].endswith("/klines"))
    assert (
        bars_ensure(adapter=binance.adapter(), market=market, interval_seconds=60, start=start, end=end) == 0
    )
    assert sum(1 for r in binance.venue.requests if r[2].endswith("/klines")) == klines  # no second fetch
    assert Bar.objects.filter(market=market, interval_seconds=60).count() == 181


def test_a_backtest_on_a_venue_market_fetches_its_bars_from_the_venue_once(
    binance: SimVenue, tenant: Any, user: Any
) -> None:
    catalogue_sync(adapter=binance.adapter())
    market = Market.objects.get(venue="BINANCE", symbol="BTC/USDT")
    version = make_version(tenant, "noop", NOOP_SOURCE)
    end = datetime.now(tz=UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    spec = BarsSpec(market=market, start=end - timedelta(hours=1), end=end, interval_seconds=60)
    backtest = backtest_create(tenant=tenant, actor=user, bars=spec, version=version)
    assert backtest.bars_total == 60  # [start, end): stored from the venue on demand
    klines = sum(1 for r in binance.venue.requests if r[2].endswith("/klines"))
    assert klines >= 1
    backtest_create(tenant=tenant, actor=user, bars=spec, version=version)
    assert sum(1 for r in binance.venue.requests if r[2].endswith("/klines")) == klines  # stored once, shared


def test_a_venues_brokers_include_the_built_in_ones(settings: Any) -> None:
    """A tenant's alpaca:paper / alpaca:live account reads its venue's bars without any configuration."""
    settings.STRATBOX_VENUES = {}
    assert {"alpaca:paper", "alpaca:live"} <= set(brokers_for_venue("ALPACA"))
    assert brokers_for_venue("BINANCE") == ["ccxt:binance"]
    assert brokers_for_venue("NOWHERE") == []
