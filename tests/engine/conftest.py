"""Engine test helpers: real strategy versions (validated by the real sandbox), instances, quotes."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

COUNTER = """
from sandbox.sdk import Strategy


class Counter(Strategy):
    CONFIG_SCHEMA = {
        "qty": {"type": "float", "default": 0.01, "min": 0.0001, "max": 100},
        "every": {"type": "int", "default": 1, "min": 1, "max": 1000},
        "note": {"type": "str", "default": "", "live": True},
        "crash_at": {"type": "int", "default": 0, "min": 0, "max": 1000000},
    }

    def init(self):
        return {"n": 0, "inits": 1}

    def on_tick(self, tick):
        self.state["n"] += 1
        n = self.state["n"]
        self.context.log(f"tick {n} price {tick.price} note {self.config['note']}")
        if self.config["crash_at"] and n >= self.config["crash_at"]:
            raise ValueError(f"boom at {n}")
        if n % self.config["every"] == 0:
            self.context.place_order("buy", self.config["qty"])
"""

QUIET = """
from sandbox.sdk import Strategy


class Quiet(Strategy):
    CONFIG_SCHEMA = {"window": {"type": "int", "default": 3, "min": 1, "max": 100}}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
"""


def make_version(tenant: Any, source: str, key: str | None = None) -> Any:
    from sandbox import validate_source
    from strategies_store.models import StrategyDefinition, StrategyVersion

    report = validate_source(source)
    assert report.ok, report.errors
    definition, _ = StrategyDefinition.objects.get_or_create(
        tenant=tenant, key=key or f"s-{uuid.uuid4().hex[:8]}", defaults={"name": "test strategy"}
    )
    number = definition.versions.count() + 1
    return StrategyVersion.objects.create(
        definition=definition,
        number=number,
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        config_schema=report.config_schema,
    )


def make_instance(
    version: Any,
    account: Any,
    market: Any,
    *,
    mode: str = "observe",
    config: dict | None = None,
    frequency: int = 1,
    **fields: Any,
) -> Any:
    from sandbox import apply_config
    from stratbox.instances.models import StrategyInstance

    clean, errors = apply_config(version.config_schema, config or {})
    assert not errors, errors
    return StrategyInstance.objects.create(
        tenant=account.tenant,
        name=f"inst-{uuid.uuid4().hex[:6]}",
        strategy=version.definition,
        version=version,
        account=account,
        market=market,
        config=clean,
        frequency_seconds=frequency,
        mode=mode,
        **fields,
    )


def set_quote(market: Any, price: float = 100.0, spread: float = 0.02) -> dict:
    from stratbox.markets.quotes import quote_set

    quote = {
        "market": market.code,
        "price": price,
        "bid": price - spread / 2,
        "ask": price + spread / 2,
        "volume": 1.0,
        "ts": time.time(),
    }
    quote_set(market.id, quote)
    return quote


@pytest.fixture
def counter_version(tenant: Any) -> Any:
    return make_version(tenant, COUNTER, key="counter")


@pytest.fixture
def instance_factory(counter_version: Any, paper_account: Any, market: Any) -> Callable[..., Any]:
    def factory(**kw: Any) -> Any:
        version = kw.pop("version", counter_version)
        return make_instance(version, kw.pop("account", paper_account), kw.pop("market", market), **kw)

    return factory


@pytest.fixture
def quote(market: Any) -> dict:
    return set_quote(market)


@pytest.fixture
def big_limits(tenant: Any) -> None:
    tenant.capital_limit = Decimal("1000000")
    tenant.save(update_fields=["capital_limit"])


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(autouse=True)
def _fresh_sandbox_cache() -> Iterator[None]:
    """Redis is flushed between tests; the in-process host cache must not outlive it."""
    from stratbox.engine import sandboxes

    sandboxes._held.clear()
    yield
