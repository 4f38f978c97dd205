"""What a new user meets in the first hour, through Django's test client: the landing page, the
staff landing, the login page, the backtest form's stored range, paginated trades, the paused
banner, the upload form that keeps the chosen files, and no design-document names anywhere."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.factories import make_user
from tests.frontend.factories import make_definition, make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(user: Any, tenant: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_anonymous_visitor_sees_what_stratbox_is_before_the_login_form(client: Client) -> None:
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200 and 'id="landing"' in html
    assert "Stratbox: run your Python trading strategies safely" in html
    assert reverse("account_signup") in html and reverse("account_login") in html


def test_the_login_page_offers_one_password_reset_link(client: Client) -> None:
    html = client.get(reverse("account_login")).content.decode()
    assert html.count("Forgot your password?") == 1


def test_staff_without_a_tenant_land_on_the_review_queue_with_a_staff_navigation(db: None) -> None:
    staff = make_user("staff@stratbox.test", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("frontend:staff_live_requests")
    html = client.get(response["Location"]).content.decode()
    nav = html.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert "Review queue" in nav and 'id="nav-admin"' in nav
    # No tenant pages (they would answer "not a member of any tenant").
    assert reverse("frontend:instance_list") not in nav and reverse("frontend:strategy_list") not in nav


def test_a_member_lands_on_instances_with_the_tenant_navigation(web: Client) -> None:
    response = web.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("frontend:instance_list")


def _bars(market: Any, start: datetime, count: int) -> None:
    from stratbox.markets.models import Bar

    Bar.objects.bulk_create(
        Bar(market=market, ts=start + timedelta(minutes=i), open=100, high=101, low=99, close=100, volume=1)
        for i in range(count)
    )


def test_the_backtest_form_shows_and_defaults_to_the_stored_range(
    web: Client, tenant: Any, market: Any
) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    _bars(market, start, 120)
    html = web.get(reverse("frontend:backtest_new")).content.decode()
    assert f"{market} — 120 bars, 2026-03-01 12:00 to 2026-03-01 13:59 UTC" in html
    assert 'name="start" value="2026-03-01T12:00"' in html and 'name="end" value="2026-03-01T14:00"' in html
    # Empty From/To: the whole stored range (it failed "end must be after start").
    from stratbox.backtests.models import Backtest

    definition = make_definition(tenant, key="bt-range")
    version = definition.versions.get(number=1)
    response = web.post(
        reverse("frontend:backtest_new"),
        {
            "version": str(version.id),
            "market": str(market.id),
            "start": "",
            "end": "",
            "interval_seconds": "60",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    bt = Backtest.objects.get(tenant=tenant)
    assert bt.bars_total == 120


def test_backtest_trades_are_paginated_with_readable_times(web: Client, tenant: Any) -> None:
    from stratbox.backtests.models import Backtest, BacktestTrade

    version = make_definition(tenant, key="many").versions.get(number=1)
    bt = Backtest.objects.create(
        tenant=tenant,
        version=version,
        version_sha256=version.sha256,
        status="succeeded",
        name="Many",
        num_trades=120,
        equity_curve=[[1772323200.0, 10000.0], [1772330400.0, 10001.0]],
    )
    ts = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    BacktestTrade.objects.bulk_create(
        BacktestTrade(
            backtest=bt,
            seq=i + 1,
            side="long",
            qty=Decimal("0.001"),
            entry_ts=ts + i * 60,
            entry_price=60200.5,
            exit_ts=ts + i * 60 + 30,
            exit_price=182.69129999999998,  # a float's binary tail
            pnl=Decimal("0.01"),
            fees=Decimal("0"),
        )
        for i in range(120)
    )
    html = web.get(reverse("frontend:backtest_detail", args=[bt.id])).content.decode()
    rows = html.split('id="bt-trades"')[1].split("</table>")[0].count("<tr>") - 1
    assert rows == 50 and "Page 1 of 3 · 120 trades" in html
    table = html.split('id="bt-trades"')[1].split("</table>")[0]
    assert "2026-03-01 00:00:00 UTC" in table and str(int(ts)) not in table  # no raw epoch seconds
    assert "60,200.5" in html and "60200.50000000" not in html
    assert "182.6913<" in html and "182.69129999999998" not in html
    # 120 trades: no markers piled into columns on the equity chart; the table has them.
    assert 'id="markers-note"' in html
    page3 = web.get(reverse("frontend:backtest_detail", args=[bt.id]), {"page": 3}).content.decode()
    assert page3.split('id="bt-trades"')[1].split("</table>")[0].count("<tr>") - 1 == 20


def test_the_paused_banner_says_nothing_reaches_the_broker(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.engine import runtime
    from stratbox.engine.control import PauseReason, instance_pause
    from stratbox.instances.services import instance_set_mode

    instance = make_instance(tenant, paper_account, market, mode="observe")
    instance_set_mode(instance=instance, actor=None, mode="active")
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    banner = html.split('id="mode-banner"')[1].split("</div>")[0]
    assert 'data-paused="false"' in banner and "orders reach the simulated broker" in banner
    runtime.r().hset(runtime.rt_key(str(instance.id)), mapping={"loaded": "1", "paused": ""})
    instance_pause(instance=instance, reason=PauseReason.USER)
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    banner = html.split('id="mode-banner"')[1].split("</div>")[0]
    text = banner.split("data-banner-text")[1].split(">", 1)[1].split("</span>")[0]
    assert 'data-paused="true"' in banner and "no orders reach the broker" in text
    assert "⏸" not in html and 'class="icon icon-pause"' in html


def test_a_refused_bundle_upload_keeps_every_chosen_file(web: Client) -> None:
    entry = "from sandbox.sdk import EntrySignal\n\n\ndef should_enter(ctx):\n    return []\n"
    exit_ = "def should_exit(ctx, position):\n    return None\n"
    config = '{"name": "No schema", "thesis": "A thesis."}'  # config_schema missing
    response = web.post(
        reverse("frontend:strategy_upload"),
        {
            "kind": "bundle",
            "key": "kept",
            "name": "Kept",
            "entry_file": SimpleUploadedFile("entry.py", entry.encode()),
            "exit_file": SimpleUploadedFile("exit.py", exit_.encode()),
            "config_file": SimpleUploadedFile("config.json", config.encode()),
        },
    )
    html = response.content.decode()
    assert response.status_code == 400 and "config_schema" in html
    # The three files come back as editable text, so a fix is one edit away.
    for name, text in (("entry_source", entry), ("exit_source", exit_), ("config_source", config)):
        area = re.search(rf'<textarea name="{name}"[^>]*>(.*?)</textarea>', html, re.S)
        assert area is not None and area.group(1).strip() == _escaped(text).strip(), name
    # Required files are not labelled "optional".
    for label in ("entry.py file", "exit.py file", "config.json file"):
        assert re.search(rf"{re.escape(label)}</label>", html), label
    assert "(optional)" not in html.split('data-kind-section="bundle"')[1].split("</fieldset>")[0]


def _escaped(text: str) -> str:
    from django.utils.html import escape

    return escape(text)


def test_no_design_document_names_in_the_ui(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    for url in (
        reverse("frontend:instance_list"),
        reverse("frontend:instance_detail", args=[instance.id]),
        reverse("frontend:instance_detail", args=[instance.id]) + "?tab=history",
        reverse("frontend:strategy_upload"),
        reverse("frontend:backtest_new"),
    ):
        html = web.get(url).content.decode().lower()
        assert "seed 00" not in html and "vm:" not in html and "slot " not in html, url


def _holding_instance(tenant: Any, paper_account: Any, market: Any) -> Any:
    """An active paper instance holding 2 units, with a current quote at 105."""
    from stratbox.markets.quotes import quote_set
    from tests.trading.conftest import Intents, make_instance, make_quote, place

    paper_account.starting_balance = paper_account.balance = Decimal("100000")
    paper_account.save()
    instance = make_instance(tenant, paper_account, market)
    place(instance, Intents(instance)("buy", 2.0), make_quote(market, 100))
    quote_set(market.pk, {**make_quote(market, 105), "ts": datetime.now(tz=UTC).timestamp()})
    return instance


def test_an_open_position_is_listed_and_closed_through_the_risk_gate(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.trading.models import Order, Position
    from tenants.models import AuditEvent

    instance = _holding_instance(tenant, paper_account, market)
    position = Position.objects.get(instance=instance, closed_at__isnull=True)
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    row = html.split(f'data-position-id="{position.pk}"')[1].split("</tr>")[0]
    unrealized = (Decimal("105") - position.avg_price) * 2  # marked to the current quote
    assert ">2<" in row and f"+{unrealized:,.2f}" in row and "105.00" in row
    close_url = reverse("frontend:instance_position_close", args=[instance.id, position.pk])
    assert close_url in row
    response = web.post(close_url)
    assert response.status_code == 302
    position.refresh_from_db()
    assert position.closed_at is not None and position.qty == 0
    sell = Order.objects.get(instance=instance, side="sell")
    assert (sell.status, sell.tag, sell.is_shadow, sell.qty) == (
        "filled",
        "manual close",
        False,
        Decimal("2"),
    )
    assert AuditEvent.objects.filter(tenant=tenant, action="position.close").exists()
    # Nothing left: a second click says so and orders nothing.
    web.post(close_url)
    assert Order.objects.filter(instance=instance, side="sell").count() == 1


def test_another_tenants_position_cannot_be_closed(
    tenant: Any, paper_account: Any, market: Any, other_tenant: Any, other_user: Any
) -> None:
    from stratbox.trading.models import Order, Position

    instance = _holding_instance(tenant, paper_account, market)
    position = Position.objects.get(instance=instance, closed_at__isnull=True)
    theirs = Client()
    theirs.force_login(other_user)
    response = theirs.post(reverse("frontend:instance_position_close", args=[instance.id, position.pk]))
    assert response.status_code == 404
    assert not Order.objects.filter(instance=instance, side="sell").exists()


def test_the_instances_overview_has_a_day_strip_and_test_run_on_each_row(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = _holding_instance(tenant, paper_account, market)
    html = web.get(reverse("frontend:instance_list")).content.decode()
    strip = html.split('id="day-strip"')[1].split("</section>")[0]
    from django.utils import timezone

    from stratbox.trading.services import instance_daily_pnl

    today = instance_daily_pnl(instance=instance, day=timezone.now().date())
    assert today != 0 and f'data-day="today">{"+" if today > 0 else "−"}{abs(today):,.2f}<' in strip
    assert 'data-day="running">1<' in strip
    row = html.split(f'data-instance-id="{instance.id}"')[1].split("</tr>")[0]
    assert 'data-cell="pnl-today"' in row and 'data-cell="pnl"' in row
    assert reverse("frontend:instance_test_run", args=[instance.id]) in row
    assert reverse("frontend:instance_pause", args=[instance.id]) in row


def test_the_instance_shows_candles_of_its_market_with_its_fills(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    import json

    from stratbox.markets import quotes

    instance = _holding_instance(tenant, paper_account, market)
    quotes.redis_client().delete(f"quote-history:{market.pk}")
    fill_ts = instance.fills.get().ts.timestamp()
    start = fill_ts // 30 * 30
    for i, price in enumerate([100.0, 103.0, 99.0, 101.0, 104.0, 102.0]):
        ts = start + i * 10  # two 30-second candles of three quotes each
        quotes.quote_set(
            market.pk, {"market": market.code, "price": price, "bid": price, "ask": price, "ts": ts}
        )
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    candles = json.loads(
        html.split('<script id="market-candles" type="application/json">')[1].split("</script>")[0]
    )
    assert candles == [
        {"time": int(start), "open": 100.0, "high": 103.0, "low": 99.0, "close": 99.0},
        {"time": int(start) + 30, "open": 101.0, "high": 104.0, "low": 101.0, "close": 102.0},
    ]
    markers = json.loads(
        html.split('<script id="market-markers" type="application/json">')[1].split("</script>")[0]
    )
    assert [(m["time"], m["shape"]) for m in markers] == [(int(start), "arrowUp")]


def test_the_last_run_is_a_readable_time_not_an_iso_string(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.engine import runtime

    instance = make_instance(tenant, paper_account, market)
    runtime.r().hset(runtime.stats_key(str(instance.id)), "last_run_at", "1767225600.123456")
    html = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    last = html.split("<dt>Last run</dt><dd>")[1].split("</dd>")[0]
    shown = last.split(">", 1)[1]  # the text; the datetime attribute keeps full precision
    assert "data-relative" in last and shown.startswith("2026-01-01 00:00:00 UTC<") and ".123" not in shown
