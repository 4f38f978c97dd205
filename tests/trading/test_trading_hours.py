"""Trading hours in paper trading, with times worked out by hand, and the same DAY expiry as the
backtester's broker.

US equities' session (09:30-16:00 America/New_York, Monday to Friday). New York moved to daylight
time on Sunday 2026-03-08: Friday 2026-03-06 trades 14:30-21:00 UTC, Monday 2026-03-09 13:30-20:00.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from sandbox.sessions import session_parse
from sandbox.simbroker import SimBroker
from stratbox.markets.models import Market
from stratbox.trading.models import Order, Position
from stratbox.trading.services.orders import orders_mark_to_market
from tests.trading.conftest import Intents, make_instance, make_quote, place

pytestmark = pytest.mark.django_db

NY = {"tz": "America/New_York", "open": "09:30", "close": "16:00", "days": [0, 1, 2, 3, 4]}


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


@pytest.fixture
def equity(db: None) -> Market:
    return Market.objects.create(venue="ALPACA", symbol="AAPL", trading_hours=NY, lot_size=D("1"))


@pytest.fixture
def inst(tenant: Any, paper_account: Any, equity: Market) -> Any:
    return make_instance(tenant, paper_account, equity)


def bar_quote(market: Market, o: float, h: float, lo: float, c: float) -> dict[str, Any]:
    return make_quote(market, c) | {"open": o, "high": h, "low": lo, "close": c}


@pytest.mark.parametrize(
    ("now", "next_open"),
    [
        (at(6, 14, 29), "2026-03-06 14:30 UTC"),  # Friday 09:29 EST
        (at(6, 21), "2026-03-09 13:30 UTC"),  # Friday's close, 16:00 EST: Monday, now EDT
        (at(7, 15), "2026-03-09 13:30 UTC"),  # Saturday
        (at(9, 13, 29), "2026-03-09 13:30 UTC"),  # Monday 09:29 EDT (open if it were still UTC-5)
    ],
)
def test_an_order_outside_the_session_is_denied_market_closed(inst, equity, now, next_open):
    r = place(inst, Intents(inst)("buy", 1), make_quote(equity, 100), now=now)
    assert (r.status, r.deny_code) == ("rejected", "MARKET_CLOSED")
    assert next_open in r.message and "09:30-16:00 America/New_York" in r.message
    assert Order.objects.get(pk=r.order.pk).deny_code == "MARKET_CLOSED"
    assert not Position.objects.filter(instance=inst).exists()


@pytest.mark.parametrize("now", [at(6, 14, 30), at(6, 20, 59), at(9, 13, 30), at(9, 19, 59)])
def test_an_order_inside_the_session_fills(inst, equity, now):
    r = place(inst, Intents(inst)("buy", 2), make_quote(equity, 100), now=now)
    assert (r.status, r.order.fill_price, r.order.filled_qty) == ("filled", D("100"), D("2"))


def test_a_shadow_order_outside_the_session_is_a_denied_shadow(tenant, paper_account, equity):
    observing = make_instance(tenant, paper_account, equity, mode="observe")
    r = place(observing, Intents(observing)("buy", 1), make_quote(equity, 100), mode="observe", now=at(7, 15))
    assert (r.status, r.deny_code) == ("rejected", "MARKET_CLOSED")
    assert not Position.objects.filter(instance=observing).exists()


def test_a_resting_limit_does_not_fill_outside_the_session(inst, equity):
    r = place(inst, Intents(inst)("buy", 2, type="limit", price=90.0), make_quote(equity, 100), now=at(6, 20))
    assert r.status == "accepted"
    touching = bar_quote(equity, 89, 89, 88, 89)
    assert orders_mark_to_market(market_id=equity.pk, quote=touching, now=at(6, 21)) == []
    assert orders_mark_to_market(market_id=equity.pk, quote=touching, now=at(7, 15)) == []
    assert Order.objects.get(pk=r.order.pk).status == "accepted"
    (filled,) = orders_mark_to_market(
        market_id=equity.pk, quote=bar_quote(equity, 91, 92, 89.5, 91), now=at(9, 13, 30)
    )
    order = Order.objects.get(pk=filled.pk)
    assert (order.status, order.fill_price, order.filled_qty) == ("filled", D("90"), D("2"))


def test_a_day_order_expires_at_the_session_close_as_in_the_backtest(inst, equity):
    i = Intents(inst)
    friday = place(
        inst, i("buy", 1, type="limit", price=90.0, tif="day"), make_quote(equity, 100), now=at(6, 15)
    )
    monday = place(
        inst, i("buy", 1, type="limit", price=80.0, tif="day"), make_quote(equity, 100), now=at(9, 15)
    )
    assert friday.order.expires_at == at(6, 21)  # 16:00 EST, not the next UTC midnight
    assert monday.order.expires_at == at(9, 20)  # 16:00 EDT
    # The backtester's broker, given the session as the runner sends it, agrees to the second.
    session = session_parse(NY)
    assert session is not None
    sim = SimBroker(
        {"sessions": session.windows_flat(at(6, 0).timestamp(), at(10, 0).timestamp()), "session_span": 60}
    )
    for placed, now in ((friday, at(6, 15)), (monday, at(9, 15))):
        order = sim.new_order(
            side="buy", qty=1, type="limit", limit=80.0, tif="day", ts=now.timestamp(), price=100.0
        )
        assert order["expire_at"] == placed.order.expires_at.timestamp()
    orders_mark_to_market(market_id=equity.pk, quote=bar_quote(equity, 95, 95, 95, 95), now=at(6, 20, 59))
    assert Order.objects.get(pk=friday.order.pk).status == "accepted"
    orders_mark_to_market(market_id=equity.pk, quote=bar_quote(equity, 79, 79, 79, 79), now=at(9, 20))
    assert set(Order.objects.filter(instance=inst).values_list("status", flat=True)) == {"expired"}
    assert not Position.objects.filter(instance=inst).exists()


def test_an_always_open_market_trades_on_saturday_and_day_ends_at_utc_midnight(
    inst, market, tenant, paper_account
):
    crypto = make_instance(tenant, paper_account, market)  # trading_hours {}
    r = place(
        crypto,
        Intents(crypto)("buy", 1, type="limit", price=90.0, tif="day"),
        make_quote(market, 100),
        now=at(7, 15),
    )
    assert r.status == "accepted" and r.order.expires_at == at(8, 0)
    sim = SimBroker({})
    order = sim.new_order(
        side="buy", qty=1, type="limit", limit=90.0, tif="day", ts=at(7, 15).timestamp(), price=100.0
    )
    assert order["expire_at"] == at(8, 0).timestamp()


def test_unreadable_hours_are_refused_by_the_admin_and_fail_closed(tenant, paper_account, equity):
    bad = {"tz": "Nowhere/Atlantis", "open": "09:30", "close": "16:00"}
    with pytest.raises(ValidationError) as err:
        Market(venue="X", symbol="Y", trading_hours=bad).full_clean()
    assert "trading_hours" in err.value.message_dict
    Market.objects.filter(pk=equity.pk).update(trading_hours=bad)  # written past the admin's check
    broken = make_instance(tenant, paper_account, Market.objects.get(pk=equity.pk))
    r = place(broken, Intents(broken)("buy", 1), make_quote(equity, 100), now=at(9, 15))
    assert r.deny_code == "MARKET_CLOSED" and "Nowhere/Atlantis" in r.message
