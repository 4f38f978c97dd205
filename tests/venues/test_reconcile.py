"""The venue reconciler against both loopback venues: a fill the user stream never reported is found
and applied once; a position the venue holds and our ledger does not is a recorded, audited
discrepancy that pauses the instance; the discrepancies are the tenant's only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.models import AccountReconcile, VenueDiscrepancy
from stratbox.engine.venue_reconcile import account_reconcile
from stratbox.trading.models import Account, Fill, Order, Position
from stratbox.venues.base import OrderIntent
from tenants.models import AuditEvent
from tests.venues.conftest import Live

pytestmark = pytest.mark.django_db


def _load(instance: Any) -> None:
    """The engine's mark of a loaded instance (what its reconciler sets after init())."""
    runtime.r().hset(runtime.rt_key(str(instance.pk)), mapping={"loaded": "1", "paused": ""})


def test_a_fill_the_user_stream_never_reported_is_found_and_applied_once(live: Live) -> None:
    inst = live.inst
    limit = inst.bid - inst.tick * 10
    result = live.place(type="limit", price=float(limit))
    order = result.order
    assert order.status == "accepted", result
    live.sim.venue.inject("unreported_fill")
    live.sim.venue.set_quote(live.sim.venue_symbol, limit - inst.tick, limit)  # the venue fills it, silently
    [at_venue] = live.venue_orders()
    assert at_venue.status == "filled" and [e.hidden for e in live.sim.venue.user_events if e.fill] == [True]

    first = account_reconcile(account=live.account)
    second = account_reconcile(account=live.account)

    order.refresh_from_db()
    assert order.status == "filled" and order.filled_qty == live.unit
    [fill] = Fill.objects.filter(order=order)
    assert (fill.qty, fill.price) == (live.unit, limit)
    assert Account.objects.get(pk=live.account.pk).balance == Decimal("100000") - live.unit * limit
    [position] = Position.objects.filter(instance=live.instance, closed_at__isnull=True)
    assert position.qty == live.unit
    # Recorded once, as corrected; positions then agree, so nothing is paused.
    [discrepancy] = VenueDiscrepancy.objects.filter(account=live.account)
    assert (discrepancy.kind, discrepancy.subject) == ("order", order.client_order_id)
    assert (
        discrepancy.ours["status"] == "accepted"
        and Decimal(discrepancy.ours["filled_qty"]) == 0
        and discrepancy.theirs["status"] == "filled"
    )
    assert discrepancy.action.startswith("corrected") and discrepancy.paused_instances == []
    assert first.corrected == [order.client_order_id] and second.corrected == []
    assert second.status == "ok" and second.discrepancies == []
    last = AccountReconcile.objects.get(account=live.account)
    assert last.status == "ok" and last.summary["orders"] == 0
    assert AuditEvent.objects.filter(action="venue.discrepancy", target_id=str(live.account.pk)).count() == 1


def test_a_position_the_ledger_does_not_hold_pauses_the_instance_with_an_audited_discrepancy(
    live: Live,
) -> None:
    _load(live.instance)
    qty = live.unit * 3
    # Bought at the venue outside the platform (by hand, another tool): our ledger knows nothing of it.
    live.sim.adapter().place(OrderIntent("by-hand-1", live.sim.symbol, "buy", qty))
    key = "AAPL" if live.sim.symbol == "AAPL" else "BTC"

    result = account_reconcile(account=live.account)

    assert result.status == "discrepancies"
    position = next(d for d in result.discrepancies if d.kind == "position")
    assert position.subject == key
    assert Decimal(position.ours["qty"]) == 0 and Decimal(position.theirs["qty"]) == qty
    assert position.paused_instances == [str(live.instance.pk)] and position.action == "paused 1 instance(s)"
    rt = runtime.rt_get(str(live.instance.pk))
    assert rt is not None and rt["paused"] and rt["pause_reason"] == "VENUE_DISCREPANCY"
    assert AuditEvent.objects.filter(
        action="instance.auto_pause", target_id=str(live.instance.pk), actor_label="venue reconciler"
    ).exists()
    audit = AuditEvent.objects.get(action="venue.discrepancy", after__subject=key)
    assert audit.tenant_id == live.account.tenant_id and audit.after["kind"] == "position"
    if live.sim.symbol == "AAPL":  # the cash went too (Alpaca reports USD, the account's currency)
        cash = next(d for d in result.discrepancies if d.kind == "balance")
        ask = live.inst.ask
        assert Decimal(cash.ours["cash"]) == 100000 and Decimal(cash.theirs["cash"]) == 100000 - qty * ask
    last = AccountReconcile.objects.get(account=live.account)
    assert last.status == "discrepancies" and "position" in last.message
    # The same difference on the next run is not recorded again.
    count = VenueDiscrepancy.objects.count()
    account_reconcile(account=live.account)
    assert VenueDiscrepancy.objects.count() == count
    assert not Order.objects.filter(account=live.account).exists()  # nothing was sent to "fix" it


def test_discrepancies_are_listed_for_their_tenant_only(
    live: Live,
    api_client: Any,
    other_api_client: Any,
) -> None:
    live.sim.adapter().place(OrderIntent("by-hand-2", live.sim.symbol, "buy", live.unit))
    account_reconcile(account=live.account)
    mine = api_client.get("/api/v1/venue-discrepancies/", {"account": str(live.account.pk)})
    assert mine.status_code == 200
    rows = mine.json()["results"] if isinstance(mine.json(), dict) else mine.json()
    assert rows and {r["account"] for r in rows} == {str(live.account.pk)}
    assert any(r["kind"] == "position" for r in rows)
    theirs = other_api_client.get("/api/v1/venue-discrepancies/")
    other_rows = theirs.json()["results"] if isinstance(theirs.json(), dict) else theirs.json()
    assert theirs.status_code == 200 and other_rows == []
    assert other_api_client.get(f"/api/v1/accounts/{live.account.pk}/reconcile/").status_code == 404
    status = api_client.get(f"/api/v1/accounts/{live.account.pk}/reconcile/")
    assert status.status_code == 200 and status.json()["status"] == "discrepancies"
    assert api_client.get("/api/v1/venue-discrepancies/", {"account": "nope"}).status_code == 400


def test_the_periodic_catalogue_resync_picks_up_a_new_listing_of_a_venue_with_accounts(
    live: Live,
) -> None:
    from celery import current_app

    from stratbox.engine.venue_reconcile import venue_catalogues_resync
    from stratbox.markets.models import Market
    from stratbox.venues.registry import venue_code
    from venuesim.engine import Instrument

    schedule = current_app.conf.beat_schedule
    assert schedule["engine.venue_catalogue_resync"]["task"] == "engine.venue_catalogue_resync"
    assert schedule["engine.venue_reconcile_all"]["task"] == "engine.venue_reconcile_all"
    alpaca = live.sim.symbol == "AAPL"
    listing = (
        Instrument(
            "NVDA",
            "NVDA",
            "USD",
            Decimal("0.01"),
            Decimal("1"),
            Decimal("1"),
            Decimal("120.00"),
            Decimal("120.02"),
        )
        if alpaca
        else Instrument(
            "SOLUSDT",
            "SOL",
            "USDT",
            Decimal("0.01"),
            Decimal("0.001"),
            Decimal("0.001"),
            Decimal("150.00"),
            Decimal("150.05"),
            asset_class="crypto",
        )
    )
    live.sim.venue.add_instrument(listing)
    symbol = "NVDA" if alpaca else "SOL/USDT"
    venue = venue_code(live.sim.name)
    assert not Market.objects.filter(venue=venue, symbol=symbol).exists()

    done = venue_catalogues_resync()

    assert "failed" not in done[live.sim.name], done
    market = Market.objects.get(venue=venue, symbol=symbol)
    assert market.venue_symbol == listing.symbol and market.tick_size == Decimal("0.01")
