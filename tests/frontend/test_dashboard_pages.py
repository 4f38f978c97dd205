"""Dashboard pages through Django's test client: the instance list with live status and controls,
the detail page's sections and tabs, pause/resume, test run, execution history, strategy version
diffs and tenant settings. Each test asserts what the user sees and what the database holds.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.frontend.factories import make_definition, make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(user: Any, tenant: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_list_shows_status_counters_pnl_and_controls(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market, name="Bot A", frequency_seconds=7)
    response = web.get(reverse("frontend:instance_list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-instance-id="{instance.id}"' in html
    assert "Runs every 7 seconds" in html
    assert 'data-status="off"' in html
    assert 'data-stat="runs"' in html
    assert "Power on" in html
    assert 'data-live-socket="/ws/tenant/"' in html


def test_detail_has_sections_tabs_and_mode_banner(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    response = web.get(reverse("frontend:instance_detail", args=[instance.id]))
    html = response.content.decode()
    assert response.status_code == 200
    for marker in ('id="identity"', 'id="mode-controls"', 'id="widgets"', 'id="config-form"'):
        assert marker in html
    for tab in ("overview", "history", "live"):
        assert f'id="panel-{tab}"' in html
    assert 'id="mode-banner"' in html and 'data-mode="off"' in html
    assert f'data-live-socket="/ws/instances/{instance.id}/"' in html
    assert "No runs yet" in html


# --- controls ---------------------------------------------------------------------------------


def test_pause_of_an_instance_that_is_off_is_refused_with_its_code(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    response = web.post(reverse("frontend:instance_pause", args=[instance.id]), follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert "INSTANCE_OFF" in html
    assert "Traceback" not in html


def test_pause_and_resume_a_loaded_instance(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.engine import runtime
    from stratbox.instances.services import instance_set_mode

    instance = make_instance(tenant, paper_account, market)
    instance_set_mode(instance=instance, actor=None, mode="observe")
    runtime.r().hset(runtime.rt_key(str(instance.id)), mapping={"loaded": "1", "paused": ""})
    response = web.post(reverse("frontend:instance_pause", args=[instance.id]), follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-status="paused"' in html and 'data-pause-reason="USER"' in html
    assert runtime.r().hget(runtime.rt_key(str(instance.id)), "pause_reason") == "USER"
    response = web.post(reverse("frontend:instance_resume", args=[instance.id]), follow=True)
    assert response.status_code == 200
    assert runtime.r().hget(runtime.rt_key(str(instance.id)), "paused") == ""


def test_list_controls_post_back_to_the_list(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    url = reverse("frontend:instance_list")
    response = web.post(
        reverse("frontend:instance_mode", args=[instance.id]), {"mode": "observe", "next": url}
    )
    assert response.status_code == 302 and response["Location"] == url
    instance.refresh_from_db()
    assert instance.mode == "observe"
    # An off-site `next` is ignored: back to the detail page.
    response = web.post(
        reverse("frontend:instance_mode", args=[instance.id]), {"mode": "off", "next": "https://evil.test/"}
    )
    assert response["Location"] == reverse("frontend:instance_detail", args=[instance.id])


def test_other_tenants_controls_are_404_and_change_nothing(
    tenant: Any, paper_account: Any, market: Any, other_user: Any, other_tenant: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    client = Client()
    client.force_login(other_user)
    for name in ("instance_pause", "instance_resume", "instance_test_run", "instance_mode"):
        response = client.post(reverse(f"frontend:{name}", args=[instance.id]), {"mode": "observe"})
        assert response.status_code == 404, name
    assert client.get(reverse("frontend:instance_runs", args=[instance.id])).status_code == 404
    instance.refresh_from_db()
    assert instance.mode == "off"
    assert str(instance.id) not in client.get(reverse("frontend:instance_list")).content.decode()


def test_viewer_cannot_use_controls(tenant: Any, paper_account: Any, market: Any) -> None:
    from tests.factories import add_member

    instance = make_instance(tenant, paper_account, market)
    client = Client()
    client.force_login(add_member(tenant, role="viewer"))
    html = client.get(reverse("frontend:instance_list")).content.decode()
    assert "Power on" not in html
    for name in ("instance_pause", "instance_test_run", "instance_mode"):
        assert (
            client.post(reverse(f"frontend:{name}", args=[instance.id]), {"mode": "observe"}).status_code
            == 403
        )
    instance.refresh_from_db()
    assert instance.mode == "off"


# --- execution history ------------------------------------------------------------------------


def _run(instance: Any, status: str = "ok", trigger: str = "scheduled", **extra: Any) -> Any:
    from django.utils import timezone

    from stratbox.engine.models import Run

    now = timezone.now()
    return Run.objects.create(
        tenant_id=instance.tenant_id,
        instance=instance,
        trigger=trigger,
        status=status,
        started_at=now,
        finished_at=now,
        version=instance.version,
        **extra,
    )


def test_history_fragment_filters_by_status_and_trigger(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    instance = make_instance(tenant, paper_account, market)
    ok = _run(instance, logs=[{"level": "info", "msg": "hello from the strategy"}])
    bad = _run(instance, status="error", trigger="manual", error_code="RUNTIME_ERROR", error_message="boom")
    url = reverse("frontend:instance_runs", args=[instance.id])
    html = web.get(url, {"status": "error"}, HTTP_HX_REQUEST="true").content.decode()
    assert f'data-run-id="{bad.id}"' in html and f'data-run-id="{ok.id}"' not in html
    assert "RUNTIME_ERROR" in html and "boom" in html
    html = web.get(url, {"trigger": "scheduled"}, HTTP_HX_REQUEST="true").content.decode()
    assert f'data-run-id="{ok.id}"' in html and f'data-run-id="{bad.id}"' not in html
    assert "hello from the strategy" in html
    # A bad filter value is a message, not a 400 page.
    response = web.get(url, {"status": "nope"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Unknown filter value" in response.content.decode()
    # Without htmx: the full page on the history tab.
    response = web.get(url, {"status": "error"})
    assert response.status_code == 302 and "tab=history" in response["Location"]


def test_history_is_paginated(web: Client, tenant: Any, paper_account: Any, market: Any) -> None:
    instance = make_instance(tenant, paper_account, market)
    for _ in range(25):
        _run(instance)
    url = reverse("frontend:instance_runs", args=[instance.id])
    html = web.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert html.count("data-run-id=") == 20 and "Page 1 of 2" in html
    html = web.get(url, {"page": 2}, HTTP_HX_REQUEST="true").content.decode()
    assert html.count("data-run-id=") == 5


def test_actions_feed_shows_shadow_and_denied_orders(
    web: Client, tenant: Any, paper_account: Any, market: Any
) -> None:
    from decimal import Decimal

    from django.utils import timezone

    from stratbox.trading.models import Order

    instance = make_instance(tenant, paper_account, market)
    common = {
        "tenant": tenant,
        "instance": instance,
        "account": paper_account,
        "market": market,
        "side": "buy",
        "type": "market",
        "qty": Decimal("0.5"),
        "created_at": timezone.now(),
    }
    shadow = Order.objects.create(
        client_order_id=f"{instance.id}-1-1", status="shadow", is_shadow=True, **common
    )
    Order.objects.create(
        client_order_id=f"{instance.id}-2-1",
        status="rejected",
        deny_code="CAPITAL_PER_TRADE_EXCEEDED",
        deny_reason="too big",
        **common,
    )
    html = web.get(reverse("frontend:instance_detail", args=[instance.id]) + "?tab=live").content.decode()
    assert 'data-action-kind="shadow"' in html
    assert 'data-action-kind="denied"' in html and "CAPITAL_PER_TRADE_EXCEEDED" in html
    # Pushed status changes find the order's row by its id (live.js `orderChange`).
    assert f'data-order-id="{shadow.pk}" data-order-status="shadow"' in html


# --- strategies and settings --------------------------------------------------------------------


def test_version_page_shows_the_diff_to_the_previous_version(web: Client, tenant: Any) -> None:
    definition = make_definition(tenant, key="diffme", versions=2)
    html = web.get(reverse("frontend:strategy_version", args=[definition.id, 2])).content.decode()
    assert "Changes since v1" in html
    assert '<li class="del">' in html and "# diffme v1" in html
    assert '<li class="add">' in html and "# diffme v2" in html
    html = web.get(reverse("frontend:strategy_version", args=[definition.id, 1])).content.decode()
    assert "no earlier version" in html


def test_token_is_shown_once_and_can_be_revoked(web: Client, tenant: Any, user: Any) -> None:
    from tenants.models import ApiToken

    response = web.post(reverse("frontend:token_add"), {"token-name": "CI bot"})
    html = response.content.decode()
    token = ApiToken.objects.get(tenant=tenant, name="CI bot")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert f"sbx_{token.prefix}_" in html and 'id="new-token-value"' in html
    assert 'id="new-token-value"' not in web.get(reverse("frontend:settings")).content.decode()
    response = web.post(reverse("frontend:token_revoke", args=[token.id]))
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_token_name_is_required(web: Client, tenant: Any) -> None:
    from tenants.models import ApiToken

    response = web.post(reverse("frontend:token_add"), {"token-name": ""})
    assert response.status_code == 400
    assert 'data-error-for="token-name"' in response.content.decode()
    assert not ApiToken.objects.filter(tenant=tenant).exists()


def test_owner_adds_changes_and_removes_a_member(web: Client, tenant: Any) -> None:
    from django.core import mail

    from tenants.models import Membership
    from tests.factories import make_user

    colleague = make_user("colleague@acme.test")
    response = web.post(
        reverse("frontend:member_add"), {"member-email": "colleague@acme.test", "member-role": "viewer"}
    )
    assert response.status_code == 302
    assert not Membership.objects.filter(tenant=tenant, user=colleague).exists()  # invited, not added
    link = "/invitations/" + mail.outbox[-1].body.split("/invitations/", 1)[1].split("/", 1)[0] + "/"
    invited = Client()
    invited.force_login(colleague)
    assert "Join" in invited.get(link).content.decode()
    assert invited.post(link).status_code == 302
    member = Membership.objects.get(tenant=tenant, user__email="colleague@acme.test")
    assert member.role == "viewer"
    web.post(reverse("frontend:member_role", args=[member.id]), {"role": "member"})
    member.refresh_from_db()
    assert member.role == "member"
    web.post(reverse("frontend:member_remove", args=[member.id]))
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_unknown_email_and_last_owner_are_explained(web: Client, tenant: Any, user: Any) -> None:
    from tenants.models import Membership

    # An address without an account is invited like any other: nothing tells the owner it has none.
    response = web.post(
        reverse("frontend:member_add"),
        {"member-email": "nobody@acme.test", "member-role": "member"},
        follow=True,
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Invited nobody@acme.test as member" in html
    own = Membership.objects.get(tenant=tenant, user=user)
    response = web.post(reverse("frontend:member_role", args=[own.id]), {"role": "viewer"}, follow=True)
    assert "LAST_OWNER" in response.content.decode()
    own.refresh_from_db()
    assert own.role == "owner"


def test_members_cannot_manage_members_or_the_kill_switch(tenant: Any) -> None:
    from tenants.models import Membership
    from tests.factories import add_member

    member_user = add_member(tenant, role="member")
    client = Client()
    client.force_login(member_user)
    own = Membership.objects.get(tenant=tenant, user=member_user)
    assert client.post(reverse("frontend:member_role", args=[own.id]), {"role": "owner"}).status_code == 403
    assert client.post(reverse("frontend:kill_switch"), {"on": "1"}).status_code == 403
    own.refresh_from_db()
    tenant.refresh_from_db()
    assert own.role == "member" and tenant.killed_at is None


def test_kill_switch_engages_and_releases(web: Client, tenant: Any) -> None:
    response = web.post(reverse("frontend:kill_switch"), {"on": "1"}, follow=True)
    tenant.refresh_from_db()
    assert tenant.killed_at is not None and "Kill switch ON" in response.content.decode()
    web.post(reverse("frontend:kill_switch"), {"on": "0"})
    tenant.refresh_from_db()
    assert tenant.killed_at is None


def test_other_tenants_member_and_token_are_404(web: Client, other_user: Any, other_tenant: Any) -> None:
    from tenants.models import Membership
    from tenants.services import token_create

    other_member = Membership.objects.get(tenant=other_tenant, user=other_user)
    issued = token_create(tenant=other_tenant, user=other_user, name="theirs")
    assert web.post(reverse("frontend:member_remove", args=[other_member.id])).status_code == 404
    assert web.post(reverse("frontend:token_revoke", args=[issued.token.id])).status_code == 404
    assert Membership.objects.filter(pk=other_member.pk).exists()
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None
    assert "theirs" not in web.get(reverse("frontend:settings")).content.decode()


# --- backtests -----------------------------------------------------------------------------------

GOOD_CSV = b"ts,open,high,low,close,volume\n" + b"".join(
    f"{1_700_000_000 + 60 * i},{100 + i},{101 + i},{99 + i},{100.5 + i},10\n".encode() for i in range(30)
)


def test_backtest_csv_with_a_bad_row_names_its_line_and_creates_nothing(web: Client, tenant: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from stratbox.backtests.models import Backtest

    definition = make_definition(tenant, key="bt-me")
    version = definition.versions.get(number=1)
    bad = GOOD_CSV + b"1700009999,abc,1,1,1,1\n"
    response = web.post(
        reverse("frontend:backtest_new"),
        {"version": str(version.id), "interval_seconds": 60, "csv_file": SimpleUploadedFile("bars.csv", bad)},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-error-for="csv_file"' in html and "line 32" in html
    assert not Backtest.objects.filter(tenant=tenant).exists()


def test_backtest_needs_a_version_or_an_instance(web: Client, tenant: Any) -> None:
    from stratbox.backtests.models import Backtest

    response = web.post(reverse("frontend:backtest_new"), {"interval_seconds": 60})
    assert response.status_code == 400
    assert 'data-error-for="version"' in response.content.decode()
    assert not Backtest.objects.filter(tenant=tenant).exists()


def test_backtest_from_csv_is_queued_and_shows_live_progress(
    web: Client, tenant: Any, celery_queue: str
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from stratbox.backtests.models import Backtest

    definition = make_definition(tenant, key="bt-ok")
    version = definition.versions.get(number=1)
    response = web.post(
        reverse("frontend:backtest_new"),
        {
            "version": str(version.id),
            "interval_seconds": 60,
            "csv_file": SimpleUploadedFile("bars.csv", GOOD_CSV),
        },
    )
    backtest = Backtest.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response["Location"] == reverse("frontend:backtest_detail", args=[backtest.id])
    assert backtest.bars_total == 30 and backtest.status == "queued"
    html = web.get(response["Location"]).content.decode()
    assert f'data-live-socket="/ws/backtests/{backtest.id}/"' in html and 'id="bt-progress"' in html


def _finished_backtest(tenant: Any, version: Any, name: str, pnl: str) -> Any:
    from decimal import Decimal

    from stratbox.backtests.models import Backtest, BacktestTrade

    bt = Backtest.objects.create(
        tenant=tenant,
        name=name,
        version=version,
        version_sha256=version.sha256,
        strategy_key=version.definition.key,
        style="tick",
        source="csv",
        market_code="CSV",
        status="succeeded",
        bars_total=3,
        bars_done=3,
        pnl=Decimal(pnl),
        total_return=0.01,
        win_rate=0.5,
        max_drawdown=0.05,
        num_trades=1,
        equity_curve=[[1_700_000_000, 10000], [1_700_000_060, 10050], [1_700_000_120, 10100]],
    )
    BacktestTrade.objects.create(
        backtest=bt,
        seq=1,
        side="long",
        qty=1,
        entry_ts=1_700_000_000,
        entry_price=100,
        exit_ts=1_700_000_120,
        exit_price=101,
        pnl=1.0,
    )
    return bt


def test_backtest_result_and_side_by_side_compare(web: Client, tenant: Any) -> None:
    version = make_definition(tenant, key="cmp").versions.get(number=1)
    a = _finished_backtest(tenant, version, "Run A", "100")
    b = _finished_backtest(tenant, version, "Run B", "-5")
    html = web.get(reverse("frontend:backtest_detail", args=[a.id])).content.decode()
    assert 'id="bt-trades"' in html and 'data-equity-chart="bt-equity"' in html and "+100.00" in html
    html = web.get(reverse("frontend:backtest_compare"), {"a": a.id, "b": b.id}).content.decode()
    assert "Run A" in html and "Run B" in html
    # One chart with both curves, and the metrics side by side in one table.
    assert html.count("data-compare-chart=") == 1 and 'id="compare-metrics"' in html
    overlay = json.loads(
        html.split('<script id="cmp-overlay" type="application/json">')[1].split("</script>")[0]
    )
    assert [c["name"] for c in overlay] == ["A · Run A", "B · Run B"] and all(c["points"] for c in overlay)
    assert "+100.00" in html and "−5.00" in html


def test_other_tenants_backtest_is_404(web: Client, other_tenant: Any, tenant: Any) -> None:
    version = make_definition(other_tenant, key="theirs").versions.get(number=1)
    theirs = _finished_backtest(other_tenant, version, "Their run", "1")
    mine = _finished_backtest(tenant, make_definition(tenant, key="mine").versions.get(number=1), "Mine", "1")
    assert web.get(reverse("frontend:backtest_detail", args=[theirs.id])).status_code == 404
    assert web.get(reverse("frontend:backtest_compare"), {"a": mine.id, "b": theirs.id}).status_code == 404
    assert web.post(reverse("frontend:backtest_cancel", args=[theirs.id])).status_code == 404
    assert "Their run" not in web.get(reverse("frontend:backtest_list")).content.decode()


# --- live accounts ----------------------------------------------------------------------------


def test_owner_adds_a_live_account_with_encrypted_credentials(
    web: Client, tenant: Any, settings: Any
) -> None:
    from cryptography.fernet import Fernet

    from stratbox.trading.models import Account

    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    response = web.post(
        reverse("frontend:live_account_add"),
        {
            "account-name": "Binance",
            "account-broker": "ccxt:binance",
            "account-starting_balance": "0",
            "account-api_key": "AKIA-very-secret-key",
            "account-api_secret": "s3cr3t-value",
        },
    )
    assert response.status_code == 302
    account = Account.objects.get(tenant=tenant, name="Binance")
    assert (account.kind, account.broker, account.has_credentials) == ("live", "ccxt:binance", True)
    assert "s3cr3t-value" not in account.credentials_ciphertext
    html = web.get(reverse("frontend:settings")).content.decode()
    assert "Binance" in html and "s3cr3t-value" not in html and "AKIA-very-secret-key" not in html


def test_live_account_without_a_key_configured_is_refused_on_the_field(
    web: Client, tenant: Any, settings: Any
) -> None:
    from stratbox.trading.models import Account

    settings.STRATBOX_CREDENTIALS_KEYS = []
    response = web.post(
        reverse("frontend:live_account_add"),
        {
            "account-name": "Kraken",
            "account-broker": "ccxt:kraken",
            "account-starting_balance": "0",
            "account-api_key": "k",
            "account-api_secret": "s",
        },
    )
    assert response.status_code == 400
    assert "STRATBOX_CREDENTIALS_KEYS" in response.content.decode()
    assert not Account.objects.filter(tenant=tenant, name="Kraken").exists()


def test_members_cannot_add_live_accounts(tenant: Any) -> None:
    from stratbox.trading.models import Account
    from tests.factories import add_member

    client = Client()
    client.force_login(add_member(tenant, role="member"))
    response = client.post(
        reverse("frontend:live_account_add"),
        {"account-name": "X", "account-broker": "ccxt:x", "account-starting_balance": "0"},
    )
    assert response.status_code == 403
    assert not Account.objects.filter(tenant=tenant, kind="live").exists()
