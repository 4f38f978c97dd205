"""Loopback venues (venuesim) on 127.0.0.1 and adapters built the platform's way (registry).

Each test gets a fresh venue state behind a real uvicorn server; the adapters use the venues'
official clients (alpaca-py, ccxt) pointed at it through the configuration a deployment would use
(`STRATBOX_VENUES`). Tests may import venuesim; the platform never does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet

from stratbox.venues.base import VenueAdapter
from stratbox.venues.registry import adapter_build
from venuesim import alpaca as alpaca_sim
from venuesim import binance as binance_sim
from venuesim.engine import Instrument, Venue
from venuesim.server import RunningServer, serve_in_thread

ALPACA_KEYS = {"api_key_id": "PKTEST0000000001", "api_secret_key": "alpaca-sim-secret-0001"}
BINANCE_KEYS = {"api_key": "binance-sim-key-0001", "secret": "binance-sim-secret-0001"}


@dataclass
class SimVenue:
    name: str  # the broker name the platform knows it by
    venue: Venue
    server: RunningServer
    credentials: dict[str, str]
    symbol: str  # the platform symbol of its first instrument
    venue_symbol: str
    config: dict[str, Any]

    def adapter(self, **kwargs: Any) -> VenueAdapter:
        return adapter_build(self.name, self.credentials, **kwargs)


def alpaca_venue() -> Venue:
    venue = Venue("alpaca")
    venue.add_instrument(
        Instrument(
            "AAPL",
            "AAPL",
            "USD",
            Decimal("0.01"),
            Decimal("0.0001"),
            Decimal("0.0001"),
            Decimal("187.10"),
            Decimal("187.12"),
            name="Apple Inc. Common Stock",
        )
    )
    venue.add_instrument(
        Instrument(
            "MSFT",
            "MSFT",
            "USD",
            Decimal("0.01"),
            Decimal("1"),
            Decimal("1"),
            Decimal("411.50"),
            Decimal("411.56"),
            name="Microsoft Corporation",
            fractionable=False,
        )
    )
    venue.add_account(ALPACA_KEYS["api_key_id"], ALPACA_KEYS["api_secret_key"], Decimal("100000"))
    return venue


def binance_venue() -> Venue:
    venue = Venue("binance")
    venue.add_instrument(
        Instrument(
            "BTCUSDT",
            "BTC",
            "USDT",
            Decimal("0.01"),
            Decimal("0.00001"),
            Decimal("0.00001"),
            Decimal("60000.00"),
            Decimal("60000.10"),
            asset_class="crypto",
        )
    )
    venue.add_instrument(
        Instrument(
            "ETHUSDT",
            "ETH",
            "USDT",
            Decimal("0.01"),
            Decimal("0.0001"),
            Decimal("0.0001"),
            Decimal("3000.00"),
            Decimal("3000.05"),
            asset_class="crypto",
        )
    )
    venue.add_account(BINANCE_KEYS["api_key"], BINANCE_KEYS["secret"], Decimal("100000"), "USDT")
    return venue


@pytest.fixture(autouse=True)
def _venue_credentials_check_on(settings: Any) -> None:
    """Here venues answer: adding a live account checks its credentials, as in production."""
    settings.STRATBOX_VENUE_CREDENTIALS_CHECK = True


def _start(kind: str, settings: Any) -> SimVenue:
    if kind == "alpaca":
        venue = alpaca_venue()
        server = serve_in_thread(alpaca_sim.create_app(venue))
        ws = server.url.replace("http://", "ws://")
        config = {
            "adapter": "alpaca",
            "simulated": True,
            "label": "Alpaca",
            "trading_url": server.url,
            "data_url": server.url,
            "stream_url": f"{ws}/v2/iex",
            "stale_after": 3,
            "poll_interval": 0.2,
            "rate_per_second": 1000,
            "burst": 1000,
        }
        sim = SimVenue("alpaca:sim", venue, server, ALPACA_KEYS, "AAPL", "AAPL", config)
    else:
        venue = binance_venue()
        server = serve_in_thread(binance_sim.create_app(venue))
        api = f"{server.url}/api/v3"
        config = {
            "adapter": "ccxt",
            "exchange": "binance",
            "simulated": True,
            "label": "Binance",
            "venue": "BINANCE",
            "urls": {"public": api, "private": api},
            "ws_url": server.url.replace("http://", "ws://") + "/ws",
            "stale_after": 3,
            "poll_interval": 0.2,
            "rate_per_second": 1000,
            "burst": 1000,
        }
        sim = SimVenue("ccxt:binance-sim", venue, server, BINANCE_KEYS, "BTC/USDT", "BTCUSDT", config)
    settings.STRATBOX_VENUES = {**(getattr(settings, "STRATBOX_VENUES", None) or {}), sim.name: config}
    return sim


@pytest.fixture(params=["alpaca", "binance"])
def sim(request: pytest.FixtureRequest, settings: Any) -> Iterator[SimVenue]:
    """Each scenario runs once per venue, through its official client."""
    started = _start(request.param, settings)
    yield started
    started.server.stop()


@pytest.fixture
def alpaca(settings: Any) -> Iterator[SimVenue]:
    started = _start("alpaca", settings)
    yield started
    started.server.stop()


@pytest.fixture
def binance(settings: Any) -> Iterator[SimVenue]:
    started = _start("binance", settings)
    yield started
    started.server.stop()


# --- an approved live instance on a loopback venue (tests of live execution) -----------------

KEY = Fernet.generate_key().decode()


@dataclass
class Live:
    sim: SimVenue
    account: Any
    instance: Any
    on_commit: Any
    n: int = 0

    @property
    def inst(self) -> Any:
        return self.sim.venue.instruments[self.sim.venue_symbol]

    def quote(self) -> dict[str, Any]:
        bid, ask = float(self.inst.bid), float(self.inst.ask)
        return {"price": (bid + ask) / 2, "bid": bid, "ask": ask, "volume": 1.0, "ts": time.time()}

    def place(self, side: str = "buy", qty: Decimal | None = None, **extra: Any) -> Any:
        self.n += 1
        intent = {
            "kind": "order",
            "client_order_id": f"{self.instance.pk}-1-{self.n}",
            "side": side,
            "qty": float(qty if qty is not None else self.unit),
            "type": "market",
            "price": None,
            "tag": None,
            **extra,
        }
        from django.utils import timezone

        from stratbox.trading.models import Order
        from stratbox.trading.services.orders import OrderResult, order_place

        with self.on_commit(execute=True):
            result = order_place(
                instance=self.instance, intent=intent, quote=self.quote(), mode="active", now=timezone.now()
            )
        if result.order is None:
            return result
        order = Order.objects.get(pk=result.order.pk)
        return OrderResult(order, order.status, order.deny_code or None, order.deny_reason, result.duplicate)

    @property
    def unit(self) -> Decimal:
        return Decimal("2") if self.sim.symbol == "AAPL" else Decimal("0.01")

    def venue_orders(self) -> list[Any]:
        return list(self.sim.venue.orders.values())

    def posts(self) -> int:
        path = "/order" if "binance" in self.sim.name else "/orders"
        return sum(1 for _k, method, p in self.sim.venue.requests if method == "POST" and p.endswith(path))


def approve(instance: Any, account: Any) -> None:
    """A current staff approval for exactly this instance, version and config (what governance stores)."""
    from stratbox.governance.models import LiveApprovalRequest
    from stratbox.governance.selectors import instance_bound_config, instance_config_hash

    LiveApprovalRequest.objects.create(
        tenant=instance.tenant,
        instance=instance,
        instance_name=instance.name,
        live_account=account,
        version=instance.version,
        config=instance_bound_config(instance),
        config_hash=instance_config_hash(instance),
        track_record={},
        criteria={},
        status="approved",
        decided_at=datetime.now(tz=UTC),
        live_instance=instance,
    )


@pytest.fixture
def live(sim: SimVenue, tenant: Any, settings: Any, django_capture_on_commit_callbacks: Any) -> Live:
    settings.STRATBOX_CREDENTIALS_KEYS = [KEY]
    from stratbox.markets.models import Market
    from stratbox.trading.services.accounts import account_create
    from stratbox.venues.registry import venue_code
    from tests.trading.conftest import make_instance

    account = account_create(
        tenant=tenant,
        actor=None,
        name=f"Live {sim.name}",
        starting_balance=Decimal("100000"),
        kind="live",
        broker=sim.name,
        credentials=sim.credentials,
    )
    market = Market.objects.create(
        venue=venue_code(sim.name),
        symbol=sim.symbol,
        venue_symbol=sim.venue_symbol,
        tick_size=Decimal("0.01"),
    )
    instance = make_instance(
        tenant,
        account,
        market,
        mode="active",
        total_capital=Decimal("5000"),
        capital_per_trade=Decimal("5000"),
        max_position_size=Decimal("5000"),
    )
    approve(instance, account)
    return Live(sim, account, instance, django_capture_on_commit_callbacks)


def cash(live: Live) -> Decimal:
    from stratbox.trading.models import Account

    return Account.objects.get(pk=live.account.pk).balance
