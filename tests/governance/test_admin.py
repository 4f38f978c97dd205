"""The Django admin's approval queue: the evidence is shown; decisions go through the services."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from stratbox.governance.models import GraduationPolicy, LiveApprovalRequest
from tenants.models import AuditEvent
from tests.governance.conftest import graduate


@pytest.fixture
def admin_client(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    return client


@pytest.fixture
def pending(api_client, paper_instance, live_account) -> LiveApprovalRequest:
    graduate(paper_instance)
    r = api_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(live_account.pk)},
        format="json",
    )
    return LiveApprovalRequest.objects.get(pk=r.json()["id"])


def test_change_page_shows_version_config_record_and_backtests(admin_client, pending, paper_instance):
    html = admin_client.get(f"/admin/governance/liveapprovalrequest/{pending.pk}/change/").content.decode()
    assert f"{paper_instance.strategy.key} v1" in html
    assert "total_capital" in html and pending.config_hash in html
    assert "&quot;trades&quot;: 20" in html or '"trades": 20' in html
    assert "TOO_FEW_TRADES" in html and "Backtests of this version" in html
    assert admin_client.get("/admin/governance/liveapprovalrequest/").status_code == 200


def test_reject_without_reason_is_a_form_error_then_approve(admin_client, pending, staff_user):
    url = f"/admin/governance/liveapprovalrequest/{pending.pk}/change/"
    r = admin_client.post(url, {"decision": "reject", "reason": ""})
    assert r.status_code == 200 and "A reason is required" in r.content.decode()
    pending.refresh_from_db()
    assert pending.status == "pending"
    r = admin_client.post(url, {"decision": "approve", "reason": "reviewed"})
    assert r.status_code == 302
    pending.refresh_from_db()
    assert (
        pending.status == "approved"
        and pending.live_instance is not None
        and pending.decided_by == staff_user
    )
    assert AuditEvent.objects.filter(action="live_request.approve", actor=staff_user).exists()


def test_graduation_policy_is_editable_and_audited(admin_client, tenant, staff_user):
    r = admin_client.post(
        "/admin/governance/graduationpolicy/add/",
        {
            "tenant": str(tenant.pk),
            "min_trades": "5",
            "min_win_rate": "50",
            "min_pnl": "0",
            "max_drawdown": "25",
        },
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    policy = GraduationPolicy.objects.get(tenant=tenant)
    assert (policy.min_trades, policy.max_drawdown, policy.updated_by) == (5, D("25"), staff_user)
    assert AuditEvent.objects.get(action="graduation_policy.create").after["min_trades"] == "5"
