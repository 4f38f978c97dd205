"""Governance fixtures: paper/live accounts and instances, a staff client, real round trips."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.factories import client_for, make_tenant, make_user
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place

TEST_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _governance_settings(settings: Any) -> None:
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0
    settings.STRATBOX_CREDENTIALS_KEYS = [TEST_KEY]


@pytest.fixture
def live_account(tenant: Any) -> Any:
    from stratbox.trading.models import Account

    return Account.objects.create(tenant=tenant, name="Live", kind="live", broker="ccxt:test")


@pytest.fixture
def other_live_account(other_tenant: Any) -> Any:
    from stratbox.trading.models import Account

    return Account.objects.create(tenant=other_tenant, name="Live", kind="live", broker="ccxt:test")


@pytest.fixture
def paper_instance(tenant: Any, paper_account: Any, market: Any) -> Any:
    return make_instance(tenant, paper_account, market, max_daily_loss=Decimal("100000"))


@pytest.fixture
def staff_user(db: None) -> Any:
    return make_user("staff@stratbox.test", is_staff=True)


@pytest.fixture
def staff_client(staff_user: Any) -> Any:
    # Staff act through their own (ops) tenant's token; the staff endpoints look at is_staff only.
    return client_for(staff_user, make_tenant("Stratbox ops", owner=staff_user))


class Trader:
    """Real round trips through `order_place` on the paper broker (zero cost): buy 10 @ 100, sell.

    Each trade is on its own day, so the daily-loss and rate limits never interfere.
    """

    def __init__(self, instance: Any, *, mode: str = "active") -> None:
        self.instance = instance
        self.intents = Intents(instance)
        self.mode = mode
        self.day = 0

    def trade(self, pnl: Decimal | str | int, qty: int = 10) -> None:
        pnl = Decimal(str(pnl))
        now = NOW + timedelta(days=self.day)
        self.day += 1
        market = self.instance.market
        buy = place(
            self.instance, self.intents("buy", float(qty)), make_quote(market, 100), mode=self.mode, now=now
        )
        assert buy.status in ("filled", "shadow") and buy.order.filled_at, buy
        sell_price = float(Decimal(100) + pnl / qty)
        sell = place(
            self.instance,
            self.intents("sell", float(qty)),
            make_quote(market, sell_price),
            mode=self.mode,
            now=now + timedelta(minutes=1),
        )
        assert sell.status in ("filled", "shadow") and sell.order.filled_at, sell

    def trades(self, pnls: list[Any]) -> None:
        for pnl in pnls:
            self.trade(pnl)


def graduate(instance: Any, wins: int = 15, losses: int = 5) -> None:
    """Give `instance` a paper record that meets seed 002's defaults (20 trades, 75 %, +, small DD)."""
    Trader(instance).trades([10] * wins + [-5] * losses)
