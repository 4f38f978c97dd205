"""Governance pages through Django's test client: the paper instance's Graduation panel and its
"Request live trading" form, and the staff approval queue (`/staff/live-requests/`).

Every write goes through the governance services; each test checks what the page says (codes,
messages, the field carrying the error) and what the database holds afterwards.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import add_member, make_user
from tests.governance.conftest import Trader, graduate
from tests.trading.conftest import make_instance

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _zero_cost_paper_broker(settings: Any) -> None:
    # `graduate()` trades exact P&Ls: no slippage, no fees (as the governance suite).
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0


def _login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def web(user: Any, tenant: Any) -> Client:
    return _login(user)


@pytest.fixture
def staff_web(db: None) -> Client:
    return _login(make_user("staff@stratbox.test", is_staff=True))


@pytest.fixture
def live_account(tenant: Any) -> Any:
    from stratbox.trading.models import Account

    return Account.objects.create(tenant=tenant, name="Binance live", kind="live", broker="ccxt:test")


@pytest.fixture
def paper_instance(tenant: Any, paper_account: Any, market: Any) -> Any:
    return make_instance(tenant, paper_account, market, max_daily_loss=Decimal("100000"))


@pytest.fixture
def graduated(paper_instance: Any) -> Any:
    graduate(paper_instance)
    return paper_instance


def _detail(client: Client, instance: Any) -> tuple[int, str]:
    response = client.get(reverse("frontend:instance_detail", args=[instance.id]))
    return response.status_code, response.content.decode()


def _request(client: Client, instance: Any, account: Any, note: str = "") -> Any:
    return client.post(
        reverse("frontend:instance_live_request", args=[instance.id]),
        {"live_account": str(account.id), "note": note},
    )


def _requests() -> Any:
    from stratbox.governance.models import LiveApprovalRequest

    return LiveApprovalRequest.objects.all()


# --- the tenant's graduation panel ------------------------------------------------------------


def test_panel_shows_paper_and_shadow_records_and_each_criterion(
    web: Client, paper_instance: Any, live_account: Any
) -> None:
    from stratbox.instances.models import StrategyInstance

    StrategyInstance.objects.filter(pk=paper_instance.pk).update(mode="observe")
    paper_instance.refresh_from_db()
    trader = Trader(paper_instance, mode="observe")  # one Trader: its order ids never repeat
    trader.trades([7, 7])
    StrategyInstance.objects.filter(pk=paper_instance.pk).update(mode="active")
    paper_instance.refresh_from_db()
    trader.mode = "active"
    trader.trades([10] * 3 + [-5])
    status, html = _detail(web, paper_instance)
    assert status == 200
    assert 'id="graduation"' in html and 'data-eligible="false"' in html
    assert 'data-ledger="paper"' in html and 'data-ledger="shadow"' in html
    paper_row = html.split('data-ledger="paper"')[1].split("</tr>")[0]
    assert ">4 <" in paper_row and "75.00 %" in paper_row and "+25.00" in paper_row
    shadow_row = html.split('data-ledger="shadow"')[1].split("</tr>")[0]
    assert ">shadow</span>" in shadow_row and ">2<" in shadow_row and "+14.00" in shadow_row
    trades = html.split('data-criterion="TOO_FEW_TRADES"')[1].split("</tr>")[0]
    assert 'data-criterion="TOO_FEW_TRADES" data-met="false"' in html and "TOO_FEW_TRADES</span>" in trades
    assert ">4<" in trades and "&gt;= 20" in trades
    assert 'data-criterion="WIN_RATE_TOO_LOW" data-met="true"' in html
    assert 'data-criterion="PNL_NOT_POSITIVE" data-met="true"' in html
    assert 'data-criterion="DRAWDOWN_TOO_HIGH" data-met="true"' in html
    assert 'id="live-request-form"' in html and "Binance live" in html
    assert 'id="live-request-hint"' in html  # not eligible yet: said before the request


def test_viewer_sees_the_panel_but_no_form_and_cannot_post(
    tenant: Any, graduated: Any, live_account: Any
) -> None:
    viewer = _login(add_member(tenant, role="viewer"))
    status, html = _detail(viewer, graduated)
    assert status == 200
    assert 'id="graduation"' in html and 'data-eligible="true"' in html
    assert 'id="live-request-form"' not in html
    response = _request(viewer, graduated, live_account)
    assert response.status_code == 403
    assert not _requests().exists()


def test_live_instance_has_no_graduation_panel(
    web: Client, tenant: Any, live_account: Any, market: Any
) -> None:
    live = make_instance(tenant, live_account, market, mode="observe")
    status, html = _detail(web, live)
    assert status == 200
    assert 'id="graduation"' not in html


def test_without_a_live_account_the_form_says_how_to_get_one(web: Client, graduated: Any) -> None:
    status, html = _detail(web, graduated)
    assert status == 200
    assert 'id="live-request-no-account"' in html and 'id="live-request-form"' not in html


# --- requesting -------------------------------------------------------------------------------


def test_refusal_lists_every_unmet_criterion_by_code_and_message(
    web: Client, paper_instance: Any, live_account: Any
) -> None:
    from tenants.models import AuditEvent

    Trader(paper_instance).trades([-5, 3])  # 2 trades, 50 %, -2: all but drawdown unmet
    response = _request(web, paper_instance, live_account)
    html = response.content.decode()
    assert response.status_code == 400
    refusal = html.split('id="live-request-refusal"')[1].split("</div>")[0]
    for code in ("TOO_FEW_TRADES", "WIN_RATE_TOO_LOW", "PNL_NOT_POSITIVE"):
        assert code in refusal
    assert "DRAWDOWN_TOO_HIGH" not in refusal
    assert "2 closed paper trades; at least 20 are needed." in refusal
    assert not _requests().exists()
    assert AuditEvent.objects.filter(action="live_request.refused").count() == 1


def test_request_of_a_graduated_instance_enters_the_queue(
    web: Client, user: Any, graduated: Any, live_account: Any
) -> None:
    response = _request(web, graduated, live_account, note="ready")
    assert response.status_code == 302
    assert response["Location"] == reverse("frontend:instance_detail", args=[graduated.id])
    created = _requests().get()
    assert created.status == "pending" and created.instance_id == graduated.id
    assert created.live_account_id == live_account.id and created.note == "ready"
    assert created.requested_by_id == user.id
    status, html = _detail(web, graduated)
    assert 'data-governance="pending"' in html
    assert 'id="live-request-waiting"' in html and 'id="live-request-form"' not in html
    assert "Live trading requested" in html  # the success message


def test_second_request_while_pending_is_refused_with_its_code(
    web: Client, graduated: Any, live_account: Any
) -> None:
    assert _request(web, graduated, live_account).status_code == 302
    response = _request(web, graduated, live_account)
    assert response.status_code == 400
    assert "REQUEST_PENDING" in response.content.decode()
    assert _requests().count() == 1


def test_another_tenants_live_account_is_a_field_error(
    web: Client, graduated: Any, other_tenant: Any
) -> None:
    from stratbox.trading.models import Account

    foreign = Account.objects.create(tenant=other_tenant, name="Theirs", kind="live", broker="ccxt:test")
    Account.objects.create(tenant=graduated.tenant, name="Mine", kind="live", broker="ccxt:test")
    response = _request(web, graduated, foreign)
    html = response.content.decode()
    assert response.status_code == 400
    assert 'data-error-for="live_account"' in html
    assert "Theirs" not in html
    assert not _requests().exists()


def test_other_tenants_instance_is_a_404(
    other_tenant: Any, other_paper_account: Any, market: Any, web: Client, live_account: Any
) -> None:
    theirs = make_instance(other_tenant, other_paper_account, market)
    assert _detail(web, theirs)[0] == 404
    assert _request(web, theirs, live_account).status_code == 404
    assert not _requests().exists()


# --- the staff pages --------------------------------------------------------------------------


@pytest.fixture
def pending(graduated: Any, live_account: Any, user: Any) -> Any:
    from stratbox.governance.services import live_request_create

    return live_request_create(
        tenant=graduated.tenant, actor=user, instance=graduated, live_account_id=live_account.id, note="pls"
    )


def test_staff_pages_refuse_anonymous_and_tenants(web: Client, pending: Any) -> None:
    queue = reverse("frontend:staff_live_requests")
    detail = reverse("frontend:staff_live_request_detail", args=[pending.id])
    approve = reverse("frontend:staff_live_request_decide", args=[pending.id, "approve"])
    anonymous = Client()
    for url in (queue, detail):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert anonymous.post(approve).status_code == 302
    for url in (queue, detail):
        response = web.get(url)
        assert response.status_code == 403 and "staff only" in response.content.decode()
    assert web.post(approve, {"reason": "self-service"}).status_code == 403
    pending.refresh_from_db()
    assert pending.status == "pending" and pending.live_instance_id is None
    assert 'id="nav-staff"' not in web.get(reverse("frontend:instance_list")).content.decode()


def test_queue_lists_pending_first_with_the_evidence(
    staff_web: Client, pending: Any, tenant: Any, paper_account: Any, market: Any, live_account: Any
) -> None:
    from stratbox.backtests.models import Backtest
    from stratbox.governance.services import live_request_reject

    older = make_instance(tenant, paper_account, market, max_daily_loss=Decimal("100000"), name="older")
    graduate(older)
    from stratbox.governance.services import live_request_create

    rejected = live_request_create(tenant=tenant, actor=None, instance=older, live_account_id=live_account.id)
    staff = make_user("boss@stratbox.test", is_staff=True)
    live_request_reject(request=rejected, actor=staff, reason="no")
    Backtest.objects.create(
        tenant=tenant,
        name="bt-evidence",
        version=pending.version,
        version_sha256=pending.version.sha256,
        strategy_key=pending.version.definition.key,
        style="tick",
        source="bars",
        status="succeeded",
        num_trades=42,
        win_rate=0.6,
        pnl=Decimal("123.45"),
        max_drawdown=0.08,
    )
    response = staff_web.get(reverse("frontend:staff_live_requests"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="nav-staff"' in html
    assert html.index(f'data-request-id="{pending.id}"') < html.index(f'data-request-id="{rejected.id}"')
    row = html.split(f'data-request-id="{pending.id}"')[1].split("</tr>")[0]
    assert tenant.name in row and pending.instance_name in row
    assert f"{pending.version.definition.key} v1" in row and "#source" in row
    assert "20 trades" in row and "75.00 %" in row and "+125.00" in row  # the paper record
    assert "all met" in row
    assert "42 trades" in row and "60.00 %" in row and "+123.45" in row  # the backtest's metrics
    only_pending = staff_web.get(reverse("frontend:staff_live_requests") + "?status=pending").content.decode()
    assert str(pending.id) in only_pending and str(rejected.id) not in only_pending


def test_detail_shows_code_config_records_and_decision_forms(staff_web: Client, pending: Any) -> None:
    response = staff_web.get(reverse("frontend:staff_live_request_detail", args=[pending.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="source"' in html and pending.version.source in html and pending.version.sha256 in html
    assert 'id="request-config"' in html and "total_capital" in html and pending.config_hash in html
    assert 'id="request-record"' in html and 'id="current-record"' in html
    assert "pls" in html  # the tenant's note
    for form in ("approve-form", "reject-form"):
        assert f'id="{form}"' in html
    assert 'id="revoke-form"' not in html


def test_approve_creates_the_live_instance_and_the_tenant_sees_it(
    staff_web: Client, web: Client, pending: Any, graduated: Any
) -> None:
    url = reverse("frontend:staff_live_request_decide", args=[pending.id, "approve"])
    response = staff_web.post(url, {"reason": "solid record"}, follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Approved: the live instance was created in observe mode." in html
    pending.refresh_from_db()
    assert pending.status == "approved" and pending.decision_reason == "solid record"
    live = pending.live_instance
    assert live is not None and live.account.kind == "live" and live.mode == "observe"
    assert 'id="revoke-form"' in html and 'id="approve-form"' not in html
    status, page = _detail(web, graduated)
    assert 'data-governance="approved"' in page and "solid record" in page
    assert f'href="{reverse("frontend:instance_detail", args=[live.id])}"' in page
    # Approving again is refused with its code; nothing changes.
    again = staff_web.post(url, {"reason": "twice"}, follow=True).content.decode()
    assert "REQUEST_NOT_PENDING" in again
    pending.refresh_from_db()
    assert pending.decision_reason == "solid record"


def test_reject_needs_a_reason_and_the_tenant_sees_it(staff_web: Client, web: Client, pending: Any) -> None:
    url = reverse("frontend:staff_live_request_decide", args=[pending.id, "reject"])
    response = staff_web.post(url, {"reason": "  "})
    html = response.content.decode()
    assert response.status_code == 400
    assert 'id="reject-error"' in html and "A reason is required." in html
    assert 'id="reject-reason"' in html and 'aria-invalid="true"' in html
    pending.refresh_from_db()
    assert pending.status == "pending"
    response = staff_web.post(url, {"reason": "drawdown too close"}, follow=True)
    assert "Rejected" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "rejected" and pending.decision_reason == "drawdown too close"
    _, page = _detail(web, pending.instance)
    assert 'data-governance="rejected"' in page and "drawdown too close" in page
    assert 'id="live-request-form"' in page  # the tenant may ask again


def test_revoke_needs_a_reason_then_revokes(staff_web: Client, pending: Any) -> None:
    from stratbox.governance.services import live_request_approve

    staff = make_user("approver@stratbox.test", is_staff=True)
    live_request_approve(request=pending, actor=staff)
    url = reverse("frontend:staff_live_request_decide", args=[pending.id, "revoke"])
    response = staff_web.post(url, {"reason": ""})
    assert response.status_code == 400 and 'id="revoke-error"' in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "approved" and pending.revoked_at is None
    response = staff_web.post(url, {"reason": "abuse"}, follow=True)
    assert "Revoked" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "revoked" and pending.revoke_reason == "abuse"


def test_unknown_request_or_action_is_a_404(staff_web: Client, pending: Any) -> None:
    import uuid

    assert (
        staff_web.get(reverse("frontend:staff_live_request_detail", args=[uuid.uuid4()])).status_code == 404
    )
    url = reverse("frontend:staff_live_request_decide", args=[pending.id, "delete"])
    assert staff_web.post(url, {"reason": "x"}).status_code == 404
    pending.refresh_from_db()
    assert pending.status == "pending"
