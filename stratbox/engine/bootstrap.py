"""Demo and first-run data: the simulated markets, the catalog, a demo tenant and a staff user.

Idempotent: running it again changes nothing that is already there.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from stratbox.engine.demo_plugins import demo_plugins_install
from stratbox.instances.models import StrategyInstance
from stratbox.instances.services import instance_create, instance_set_mode
from stratbox.markets.models import Market
from stratbox.markets.services import bars_simulate
from stratbox.trading.models import Account, AccountKind
from stratbox.trading.services.accounts import account_create
from strategies_store.models import StrategyDefinition
from strategies_store.services import catalog_install
from tenants.errors import ApplicationError
from tenants.models import Membership, Tenant
from tenants.services import tenant_create

DEMO_EMAIL = "demo@stratbox.local"
DEMO_PASSWORD = "stratbox-demo"  # noqa: S105 - a documented local demo credential
ADMIN_EMAIL = "admin@stratbox.local"
ADMIN_PASSWORD = "stratbox-admin"  # noqa: S105

SIM_MARKETS = [
    ("SIM", "BTC/USDT", Decimal("0.01"), Decimal("0.0001"), Decimal("60000"), 0.0008),
    ("SIM", "ETH/USDT", Decimal("0.01"), Decimal("0.001"), Decimal("3000"), 0.001),
    ("SIM", "AAPL", Decimal("0.01"), Decimal("1"), Decimal("190"), 0.0005),
]


def markets_install() -> list[Market]:
    markets = []
    for venue, symbol, tick, lot, start, vol in SIM_MARKETS:
        market, _ = Market.objects.get_or_create(
            venue=venue,
            symbol=symbol,
            defaults={"tick_size": tick, "lot_size": lot, "sim_start_price": start, "sim_volatility": vol},
        )
        markets.append(market)
    return markets


def _user(email: str, password: str, *, staff: bool = False):  # type: ignore[no-untyped-def]
    User = get_user_model()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(username=email, email=email, password=password)
        user.is_staff = user.is_superuser = staff
        user.save()

        EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
    return user


@transaction.atomic
def demo_bootstrap() -> list[str]:
    lines = []
    markets = markets_install()
    lines.append(f"markets: {', '.join(m.code for m in markets)}")
    # Two weeks of one-minute history per simulated market, for backtests from the first minute.
    stored = sum(bars_simulate(market=m, count=DEMO_HISTORY_BARS, interval_seconds=60) for m in markets)
    lines.append(f"history: {stored} one-minute bars stored" if stored else "history: already stored")
    installed = catalog_install()
    lines.append(f"catalog: {', '.join(d.key for d in installed)}")
    admin = _user(ADMIN_EMAIL, ADMIN_PASSWORD, staff=True)
    demo = _user(DEMO_EMAIL, DEMO_PASSWORD)
    membership = Membership.objects.filter(user=demo).select_related("tenant").first()
    tenant = membership.tenant if membership else tenant_create(name="Demo", owner=demo)
    account, _ = Account.objects.get_or_create(
        tenant=tenant,
        name="Paper",
        defaults={
            "kind": AccountKind.PAPER,
            "starting_balance": Decimal("100000"),
            "balance": Decimal("100000"),
        },
    )
    lines.append(demo_instance_install(tenant=tenant, owner=demo, account=account))
    lines += _demo_sim_venue_accounts(tenant=tenant, owner=demo)
    lines.append(_demo_plugins(tenant=tenant, owner=demo, staff=admin))
    lines.append(
        f"demo tenant: {tenant.name} ({DEMO_EMAIL} / {DEMO_PASSWORD}); staff: {ADMIN_EMAIL} / {ADMIN_PASSWORD}"
    )
    return lines


def _demo_sim_venue_accounts(*, tenant: Tenant, owner: Any) -> list[str]:
    """A live account on each configured simulated venue that has demo keys (`make run`'s loopback
    Alpaca), so the demo can walk paper -> approval -> live on one laptop. Labelled as simulated."""
    lines = []
    for broker, config in sorted((getattr(settings, "STRATBOX_VENUES", None) or {}).items()):
        path = config.get("demo_credentials_file")
        if not config.get("simulated") or not path or not Path(path).exists():
            continue
        if Account.objects.filter(tenant=tenant, kind=AccountKind.LIVE, broker=broker).exists():
            continue
        label = f"{config.get('label') or broker}"[:60]
        try:
            account_create(
                tenant=tenant,
                actor=owner,
                name=label if "simulated" in label.lower() else f"{label} (simulated)",
                starting_balance=Decimal("100000"),
                kind=AccountKind.LIVE,
                broker=broker,
                credentials=json.loads(Path(path).read_text()),
                check=False,  # the venue process starts after this; the feed's first call checks the keys
            )
        except ApplicationError as exc:  # e.g. no credentials key configured: the demo goes on without it
            lines.append(f"simulated venue {broker}: no live account ({exc})")
            continue
        lines.append(f"simulated venue {broker}: live account for the demo tenant")
    return lines


def _demo_plugins(*, tenant: Tenant, owner: Any, staff: Any) -> str:
    instance = StrategyInstance.objects.filter(tenant=tenant, name=DEMO_INSTANCE_NAME).first()
    if instance is None:
        return "demo plugin: skipped (no demo instance)"
    return demo_plugins_install(tenant=tenant, owner=owner, staff=staff, instance=instance)


DEMO_INSTANCE_NAME = "Demo SMA crossover"
DEMO_HISTORY_BARS = 20_000


def demo_instance_install(*, tenant: Tenant, owner: Any, account: Account) -> str:
    """The catalog SMA crossover trading SIM:BTC/USDT every second on the demo's paper account.

    Created once; a demo instance the user later changed or switched off is left alone.
    """
    existing = StrategyInstance.objects.filter(tenant=tenant, name=DEMO_INSTANCE_NAME).first()
    if existing is not None:
        return f"demo instance: {existing.name} ({existing.mode})"
    market = Market.objects.filter(venue="SIM", symbol="BTC/USDT").first()
    if (
        market is None
        or not StrategyDefinition.objects.filter(tenant__isnull=True, key="sma_crossover").exists()
    ):
        return "demo instance: skipped (no SIM:BTC/USDT market or no sma_crossover in the catalog)"
    instance = instance_create(
        tenant=tenant,
        actor=owner,
        name=DEMO_INSTANCE_NAME,
        strategy_key="sma_crossover",
        account_id=account.pk,
        market_id=market.pk,
        # Short windows so crosses (and shadow orders) show up within a minute of `make run`;
        # 0.001 BTC keeps an order (~60 USD) inside the default capital per trade.
        config={"fast": 5, "slow": 12, "qty": 0.001},
        frequency_seconds=1,
        mode="observe",
    )
    # Paper money only, so the demo shows real paper orders at once (activation goes through
    # observe, as for any instance).
    instance_set_mode(instance=instance, actor=owner, mode="active")
    return f"demo instance: {instance.name} (active on paper, SIM:BTC/USDT, every second)"
