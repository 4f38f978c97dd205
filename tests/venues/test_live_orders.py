"""Live execution through `order_place` against both loopback venues, through their official clients.

Every scenario asserts what the venue itself holds afterwards (its orders and its request log) and
what our ledger holds (order status, fills, cash), with hand-computed numbers: a lost or a second
order shows up on one side or the other. A live order is sent once its journal row commits; here
the test's transaction stands for it (its on-commit callbacks run when `Live.place` returns). The
restart scenario (test_live_restart.py) commits for real, in another process.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.utils import timezone

from stratbox.trading.models import Account, Fill, Order, Position
from stratbox.trading.services.accounts import account_create
from stratbox.trading.services.live import order_apply_venue_report
from stratbox.trading.services.orders import OrderResult, order_place
from stratbox.venues.registry import venue_code
from tests.trading.conftest import make_instance
from tests.venues.conftest import SimVenue

pytestmark = pytest.mark.django_db

KEY = Fernet.generate_key().decode()


@dataclasses.dataclass
class Live:
    sim: SimVenue
    account: Account
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


def approve(instance: Any, account: Account) -> None:
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
        decided_at=timezone.now(),
        live_instance=instance,
    )


@pytest.fixture
def live(sim: SimVenue, tenant: Any, settings: Any, django_capture_on_commit_callbacks: Any) -> Live:
    settings.STRATBOX_CREDENTIALS_KEYS = [KEY]
    from stratbox.markets.models import Market

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
    instance = make_instance(tenant, account, market, mode="active")
    approve(instance, account)
    return Live(sim, account, instance, django_capture_on_commit_callbacks)


def cash(live: Live) -> Decimal:
    return Account.objects.get(pk=live.account.pk).balance


def test_a_market_order_is_journaled_sent_once_filled_and_booked_once(live: Live) -> None:
    ask = live.inst.ask
    result = live.place()
    order = result.order
    assert result.status == "filled" and result.deny_code is None, result
    [at_venue] = live.venue_orders()
    assert at_venue.client_order_id == order.venue_client_order_id and live.posts() == 1
    assert order.venue_order_id == str(at_venue.id if live.sim.symbol == "AAPL" else at_venue.seq)
    assert order.sent_at is not None and order.filled_qty == live.unit and order.fill_price == ask
    [fill] = Fill.objects.filter(order=order)
    assert (fill.qty, fill.price, fill.fee) == (live.unit, ask, 0)
    assert cash(live) == Decimal("100000") - live.unit * ask
    # The same report again, and an older one, book nothing more.
    report = live.sim.adapter().order_by_client_id(order.venue_client_order_id, live.sim.symbol)
    assert report is not None and report.status == "filled"
    order_apply_venue_report(live.account, report)
    older = dataclasses.replace(report, status="accepted", filled_qty=Decimal(0), avg_fill_price=None)
    again = order_apply_venue_report(live.account, older)
    assert again is not None and again.status == "filled" and again.filled_qty == live.unit
    assert Fill.objects.filter(order=order).count() == 1
    assert cash(live) == Decimal("100000") - live.unit * ask
    [position] = Position.objects.filter(instance=live.instance, closed_at__isnull=True)
    assert position.qty == live.unit and position.cost_basis == live.unit * ask
    assert (
        order_apply_venue_report(live.account, dataclasses.replace(report, client_order_id="not-ours"))
        is None
    )
