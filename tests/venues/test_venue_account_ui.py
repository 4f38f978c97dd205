"""The live account at its venue, in the dashboard and the API: after a real reconcile against the
loopback venue, the page and GET accounts/<id>/venue/ show exactly the balances and positions the
venue reported (hand-computed here), the discrepancy and what was done, and the live order with its
venue status and id; "Reconcile now" queues a reconcile on a worker; the instance page shows the
venue streams' health. Another tenant's account is a 404 everywhere."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from stratbox.engine.models import AccountReconcile
from stratbox.engine.venue_reconcile import account_reconcile
from stratbox.trading.models import Order
from stratbox.venues.base import OrderIntent, StreamHealth
from stratbox.venues.health import QUOTE_STREAM_KEY, health_publish
from tenants.models import AuditEvent
from tests.venues.conftest import Live
from tests.venues.test_reconcile import _load

pytestmark = pytest.mark.django_db


def _web(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _expected(live: Live) -> tuple[list[dict[str, Decimal]], list[dict[str, Decimal]]]:
    """What the venue holds after a resting buy of 1 unit 10 ticks under the bid and a by-hand market
    buy of 3 units at the ask, from the fixture's quotes: (balances, positions)."""
    if live.sim.symbol == "AAPL":  # 100000 - 6 x 187.12; Alpaca reports cash, no hold for orders
        cash = Decimal("100000") - 6 * Decimal("187.12")
        assert cash == Decimal("98877.28")
        return (
            [{"currency": "USD", "free": cash, "total": cash}],
            [{"symbol": "AAPL", "qty": Decimal("6"), "avg_price": Decimal("187.12")}],
        )
    # Binance: 100000 - 0.03 x 60000.10; the resting 0.01 @ 59999.90 locks 599.999 USDT.
    total = Decimal("100000") - Decimal("0.03") * Decimal("60000.10")
    assert total == Decimal("98199.997")
    return (
        [
            {"currency": "BTC", "free": Decimal("0.03"), "total": Decimal("0.03")},
            {"currency": "USDT", "free": total - Decimal("599.999"), "total": total},
        ],
        [{"symbol": "BTC", "qty": Decimal("0.03"), "avg_price": Decimal("0")}],
    )


def _decimals(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{k: (v if k in ("currency", "symbol") else Decimal(v)) for k, v in row.items()} for row in rows]


def test_the_account_page_and_api_show_what_the_reconciler_read_at_the_venue(
    live: Live,
    user: Any,
    api_client: Any,
    other_user: Any,
    other_api_client: Any,
) -> None:
    _load(live.instance)
    limit = live.inst.bid - live.inst.tick * 10
    order = live.place(type="limit", price=float(limit)).order
    assert order.status == "accepted" and order.venue_order_id
    live.sim.adapter().place(OrderIntent("by-hand-ui", live.sim.symbol, "buy", live.unit * 3))

    result = account_reconcile(account=live.account)

    balances, positions = _expected(live)
    stored = AccountReconcile.objects.get(account=live.account)
    assert _decimals(stored.venue_balances) == balances
    assert _decimals(stored.venue_positions) == positions
    assert stored.venue_read_at == stored.last_at and stored.status == "discrepancies"
    position = next(d for d in result.discrepancies if d.kind == "position")

    # The API: the same figures, the discrepancy with its action, the order with its venue ids.
    body = api_client.get(f"/api/v1/accounts/{live.account.pk}/venue/").json()
    assert _decimals(body["balances"]) == balances and _decimals(body["positions"]) == positions
    assert body["venue"] == {
        "label": "Alpaca (simulated venue)",
        "environment": "simulated",
        "simulated": True,
    } or (
        body["venue"] == {"label": "Binance (simulated venue)", "environment": "simulated", "simulated": True}
    )
    assert body["last_reconcile"]["status"] == "discrepancies" and body["account"]["credentials_hint"]
    [listed] = [d for d in body["discrepancies"] if d["kind"] == "position"]
    assert listed["id"] == position.id and listed["action"] == "paused 1 instance(s)"
    assert listed["paused_instances"] == [str(live.instance.pk)]
    [api_order] = body["orders"]
    assert (api_order["client_order_id"], api_order["venue_order_id"], api_order["status"]) == (
        order.client_order_id,
        order.venue_order_id,
        "accepted",
    )
    text = str(body)
    for secret in live.sim.credentials.values():
        assert secret not in text

    # The page: the same figures, labelled a simulated venue.
    page = _web(user).get(f"/settings/live-accounts/{live.account.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="simulated-badge"' in html and "no real money" in html
    for row in stored.venue_balances:
        assert f'data-currency="{row["currency"]}"' in html and f'data-total="{row["total"]}"' in html
    for row in stored.venue_positions:
        assert f'data-symbol="{row["symbol"]}"' in html and f'data-qty="{row["qty"]}"' in html
    assert f'data-discrepancy-id="{position.id}"' in html and "paused 1 instance(s)" in html
    assert order.venue_order_id in html and 'data-status="accepted"' in html
    for secret in live.sim.credentials.values():
        assert secret not in html
    settings_page = _web(user).get("/settings/").content.decode()
    assert f'href="/settings/live-accounts/{live.account.pk}/"' in settings_page

    # Another tenant: 404 on the page, the API and "reconcile now"; a paper account is no live account.
    other = _web(other_user)
    assert other.get(f"/settings/live-accounts/{live.account.pk}/").status_code == 404
    assert other.post(f"/settings/live-accounts/{live.account.pk}/reconcile/").status_code == 404
    assert other_api_client.get(f"/api/v1/accounts/{live.account.pk}/venue/").status_code == 404
    assert other_api_client.post(f"/api/v1/accounts/{live.account.pk}/reconcile/").status_code == 404
    # A paper account has no venue: the API says so, the live-account page does not exist for it.
    paper = live.instance.tenant.accounts.create(name="Paper")
    paper_body = api_client.get(f"/api/v1/accounts/{paper.pk}/venue/").json()
    assert paper_body["venue"]["environment"] == "paper" and paper_body["balances"] is None
    assert paper_body["orders"] == [] and paper_body["discrepancies"] == []
    assert _web(user).get(f"/settings/live-accounts/{paper.pk}/").status_code == 404
    assert api_client.get("/api/v1/accounts/not-a-uuid/venue/").status_code == 404


def _queued_reconciles(account_id: str) -> list[bytes]:
    """The engine.venue_reconcile messages for this account waiting in the broker's default queue."""
    from django.conf import settings

    from stratbox.markets.quotes import redis_client

    found = []
    for raw in redis_client().lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == "engine.venue_reconcile" and account_id in headers["argsrepr"]:
            found.append(raw)
    return found


@pytest.mark.parametrize("sim", ["binance"], indirect=True)
def test_reconcile_now_queues_the_venue_reconcile_once(
    live: Live,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from celery.signals import before_task_publish
    from django.conf import settings

    from stratbox.engine.tasks import venue_reconcile_task
    from stratbox.markets.quotes import redis_client

    account_id = str(live.account.pk)
    redis_client().delete(f"stratbox:venue:reconcile-requested:{account_id}")
    assert not AccountReconcile.objects.filter(account=live.account).exists()
    live.sim.adapter().place(OrderIntent("by-hand-now", live.sim.symbol, "buy", live.unit))
    web = _web(user)
    published: list[str] = []

    def count(sender: Any = None, headers: Any = None, **_: Any) -> None:
        if sender == "engine.venue_reconcile" and account_id in str((headers or {}).get("argsrepr")):
            published.append(sender)

    # Counted as the messages leave for the broker: a worker of another test may take them at once.
    before_task_publish.connect(count)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = web.post(f"/settings/live-accounts/{account_id}/reconcile/")
            again = web.post(f"/settings/live-accounts/{account_id}/reconcile/", follow=True)
    finally:
        before_task_publish.disconnect(count)
        for raw in _queued_reconciles(account_id):
            redis_client().lrem(settings.CELERY_TASK_DEFAULT_QUEUE, 0, raw)
    assert first.status_code == 302 and "just requested" in again.content.decode()
    assert len(published) == 1  # the second click within seconds is the same request
    assert not AccountReconcile.objects.filter(account=live.account).exists()  # the web never reads the venue
    venue_reconcile_task(account_id)  # what the worker that takes the message runs
    stored = AccountReconcile.objects.get(account=live.account)
    [position] = stored.venue_positions
    assert Decimal(position["qty"]) == live.unit
    assert (
        AuditEvent.objects.filter(
            action="venue.reconcile_requested", target_id=account_id, actor=user
        ).count()
        == 1
    )
    assert not Order.objects.filter(account=live.account).exists()


@pytest.mark.parametrize("sim", ["alpaca"], indirect=True)
def test_the_instance_page_shows_the_venue_streams_health(
    live: Live, user: Any, other_user: Any, other_tenant: Any
) -> None:
    from stratbox.trading.venue_streams import HEALTH_KEY

    market = live.instance.market
    market.feed = "venue"  # its quotes come from the venue's stream (what the venue feed syncs)
    market.save(update_fields=["feed"])
    account_key = HEALTH_KEY.format(account_id=live.account.pk)
    quote_key = QUOTE_STREAM_KEY.format(venue=live.instance.market.venue)
    web = _web(user)
    url = f"/instances/{live.instance.pk}/"
    try:
        html = web.get(url).content.decode()
        assert 'id="venue-health"' in html and "not running" in html  # no stream has published yet
        # What the user stream publishes after a drop and a reconnect, and a quote stream gone quiet.
        health_publish(
            account_key, StreamHealth(connects=3, drops=2, last_quote_ts=time.time() - 4), reports=7
        )
        quotes = StreamHealth(connects=1, last_quote_ts=time.time() - 60, errors=["socket closed"])
        health_publish(quote_key, quotes)
        from stratbox.markets.quotes import redis_client

        redis_client().hset(quote_key, "updated_at", time.time() - 60)  # its publisher stopped a minute ago
        page = web.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        user_row = html[html.index('data-stream="user"') :].split("</tr>")[0]
        assert ">connected<" in user_row and "data-reconnects>2<" in user_row
        quote_row = html[html.index('data-stream="quotes"') :].split("</tr>")[0]
        assert ">stale<" in quote_row and "socket closed" in quote_row
        assert _web(other_user).get(url).status_code == 404
    finally:
        from stratbox.markets.quotes import redis_client

        redis_client().delete(account_key, quote_key)
