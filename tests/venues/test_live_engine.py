"""The demo's path end to end: the simulated venue's live account, an approved live instance, and an
engine tick whose order reaches the loopback Alpaca through alpaca-py and comes back filled."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.bootstrap import _demo_sim_venue_accounts
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.markets.models import Market
from stratbox.trading.models import Account, Fill, Order
from stratbox.venues.registry import venue_code
from tests.engine.conftest import COUNTER, make_instance, make_version, set_quote
from tests.venues.conftest import KEY, SimVenue, approve

pytestmark = pytest.mark.django_db


def test_an_approved_live_instance_trades_on_the_simulated_venue_through_the_engine_tick(
    alpaca: SimVenue,
    tenant: Any,
    user: Any,
    settings: Any,
    tmp_path: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [KEY]
    keys = tmp_path / "sim-venue.json"
    keys.write_text(json.dumps(alpaca.credentials))
    settings.STRATBOX_VENUES = {
        **settings.STRATBOX_VENUES,
        alpaca.name: {**alpaca.config, "demo_credentials_file": str(keys)},
    }
    assert _demo_sim_venue_accounts(tenant=tenant, owner=user) == [
        f"simulated venue {alpaca.name}: live account for the demo tenant"
    ]
    account = Account.objects.get(tenant=tenant, kind="live", broker=alpaca.name)
    market = Market.objects.create(venue=venue_code(alpaca.name), symbol="AAPL", venue_symbol="AAPL")
    instance = make_instance(
        make_version(tenant, COUNTER),
        account,
        market,
        mode="active",
        config={"qty": 2},
        total_capital=Decimal("5000"),
        capital_per_trade=Decimal("5000"),
        max_position_size=Decimal("5000"),
        max_daily_loss=Decimal("1000"),
    )
    approve(instance, account)
    reconcile()
    set_quote(market, 187.11, spread=0.02)  # the venue's own touch: bid 187.10, ask 187.12
    slot = int(runtime.rt_get(str(instance.pk))["next_due_at"])
    with django_capture_on_commit_callbacks(execute=True):  # the tick's commit: then the send
        out = tick_run(instance.pk, slot)
    assert out.status == "ok", out.error
    assert [(a["kind"], a["deny_code"]) for a in out.actions] == [("order", None)]
    order = Order.objects.get(instance=instance)
    assert order.client_order_id == f"{instance.pk}-{slot}-1"
    assert order.status == "filled" and order.filled_qty == 2 and order.fill_price == Decimal("187.12")
    [at_venue] = alpaca.venue.orders.values()
    assert at_venue.client_order_id == order.client_order_id and str(at_venue.id) == order.venue_order_id
    assert Fill.objects.filter(order=order).count() == 1
    assert Account.objects.get(pk=account.pk).balance == Decimal("100000") - 2 * Decimal("187.12")
