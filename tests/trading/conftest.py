"""Fixtures for the trading suites: instances, quotes, and a zero-cost paper broker by default."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def make_instance(tenant: Any, account: Any, market: Any, **fields: Any) -> Any:
    from stratbox.instances.models import StrategyInstance
    from strategies_store.models import StrategyDefinition, StrategyVersion

    key = f"s-{uuid.uuid4().hex[:8]}"
    definition = StrategyDefinition.objects.create(tenant=tenant, key=key, name=key)
    version = StrategyVersion.objects.create(
        definition=definition, number=1, source="x = 1", sha256=uuid.uuid4().hex
    )
    defaults: dict[str, Any] = {
        "name": key,
        "mode": "active",
        "total_capital": Decimal("1000"),
        "capital_per_trade": Decimal("1000"),
        "max_positions": 5,
        "max_position_size": Decimal("1000"),
        "max_daily_loss": Decimal("100"),
    }
    defaults.update(fields)
    return StrategyInstance.objects.create(
        tenant=tenant, strategy=definition, version=version, account=account, market=market, **defaults
    )


def make_quote(
    market: Any, price: float, bid: float | None = None, ask: float | None = None
) -> dict[str, Any]:
    return {
        "market": market.code,
        "price": price,
        "bid": bid if bid is not None else price,
        "ask": ask if ask is not None else price,
        "volume": 1.0,
        "ts": NOW.timestamp(),
    }


class Intents:
    """Deterministic client_order_ids for one instance: `<uuid>-<tick>-<n>`."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self.n = 0

    def __call__(
        self, side: str = "buy", qty: Any = 1.0, type: str = "market", price: Any = None, **extra: Any
    ) -> dict[str, Any]:
        self.n += 1
        intent = {
            "kind": "order",
            "client_order_id": f"{self.instance.pk}-1-{self.n}",
            "side": side,
            "qty": qty,
            "type": type,
            "price": price,
            "tag": None,
        }
        intent.update(extra)
        return intent


@pytest.fixture(autouse=True)
def _zero_cost_broker(settings: Any) -> None:
    """Tests opt into slippage/fees explicitly (per account), so hand-checked numbers stay readable."""
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0


@pytest.fixture
def instance(tenant: Any, paper_account: Any, market: Any) -> Any:
    return make_instance(tenant, paper_account, market)


@pytest.fixture
def intents(instance: Any) -> Intents:
    return Intents(instance)


def place(
    instance: Any,
    intent: dict[str, Any],
    quote: dict[str, Any] | None,
    *,
    mode: str = "active",
    now: datetime = NOW,
) -> Any:
    from stratbox.trading.services.orders import order_place

    return order_place(instance=instance, intent=intent, quote=quote, mode=mode, now=now)
