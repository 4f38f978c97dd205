"""Approval end to end: request -> staff queue -> approve (live instance bound to version + config)
-> trading passes the approval gate; config change invalidates; reject; revoke pauses."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from stratbox.governance.models import LiveApprovalRequest
from stratbox.governance.selectors import live_approval_is_current
from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Order
from tenants.models import AuditEvent
from tests.governance.conftest import graduate
from tests.trading.conftest import NOW, Intents, make_quote, place


def _request(api_client, instance, account) -> str:
    r = api_client.post(
        f"/api/v1/instances/{instance.pk}/live-request/",
        {"live_account": str(account.pk), "note": "ready"},
        format="json",
    )
    assert r.status_code == 201, r.content
    return r.json()["id"]


@pytest.fixture
def pending(api_client, paper_instance, live_account) -> str:
    graduate(paper_instance)
    return _request(api_client, paper_instance, live_account)


def _buy(instance, market, n=1):
    intent = Intents(instance)("buy", 1.0, client_order_id=f"{instance.pk}-9-{n}")
    return place(instance, intent, make_quote(market, 100), now=NOW + timedelta(days=40 + n))


def test_end_to_end_approval(
    api_client, staff_client, staff_user, pending, paper_instance, live_account, market
):
    queue = staff_client.get("/api/v1/staff/live-requests/?status=pending").json()
    assert [r["id"] for r in queue["results"]] == [pending]
    assert (
        queue["results"][0]["tenant_name"] == "Acme"
        and queue["results"][0]["requested_by"] == "owner@acme.test"
    )

    detail = staff_client.get(f"/api/v1/staff/live-requests/{pending}/").json()
    assert detail["version"] == str(paper_instance.version_id) and detail["source"] == "x = 1"
    assert detail["config"]["total_capital"] == "1000.00" and detail["current"]["record"]["trades"] == 20
    assert detail["backtests"] == []

    r = staff_client.post(
        f"/api/v1/staff/live-requests/{pending}/approve/", {"reason": "solid"}, format="json"
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["status"] == "approved" and body["decided_by"] == "staff@stratbox.test"
    live = StrategyInstance.objects.get(pk=body["live_instance"])
    assert (
        live.account_id == live_account.pk
        and live.mode == "observe"
        and live.tenant_id == paper_instance.tenant_id
    )
    assert (live.version_id, live.config, live.total_capital, live.frequency_seconds) == (
        paper_instance.version_id,
        paper_instance.config,
        paper_instance.total_capital,
        paper_instance.frequency_seconds,
    )
    assert live_approval_is_current(live) and body["approval_current"] is True
    assert AuditEvent.objects.filter(action="live_request.approve", actor=staff_user).exists()

    # The tenant sees the decision.
    mine = api_client.get("/api/v1/live-requests/").json()["results"]
    assert [(m["id"], m["status"], m["decision_reason"]) for m in mine] == [(pending, "approved", "solid")]
    gov = api_client.get(f"/api/v1/instances/{live.pk}/governance/").json()
    assert gov["live_approval"] == {
        "required": True,
        "current": True,
        "request_id": pending,
        "status": "approved",
    }

    # The tenant activates it; the approval gate passes — and the stub adapter refuses clearly.
    assert (
        api_client.post(f"/api/v1/instances/{live.pk}/mode/", {"mode": "active"}, format="json").status_code
        == 200
    )
    result = _buy(live, market)
    assert result.deny_code == "BROKER_UNAVAILABLE" and "has no credentials" in result.message

    # Approval is bound to the config: a change (capital allocation here) makes it not current.
    r = api_client.patch(f"/api/v1/instances/{live.pk}/", {"capital_per_trade": "50.00"}, format="json")
    assert r.status_code == 200
    live.refresh_from_db()
    assert not live_approval_is_current(live)
    result = _buy(live, market, n=2)
    assert result.deny_code == "NOT_APPROVED" and Order.objects.get(pk=result.order.pk).status == "rejected"
    assert api_client.get(f"/api/v1/live-requests/{pending}/").json()["approval_current"] is False


@pytest.mark.parametrize(
    "change",
    [{"frequency_seconds": 60}, {"max_daily_loss": "10.00"}, {"config": {"extra": 1}}],
    ids=["frequency", "allocation", "config"],
)
def test_any_bound_change_invalidates(staff_client, staff_user, pending, change):
    from stratbox.governance.services import live_request_approve

    req = live_request_approve(request=LiveApprovalRequest.objects.get(pk=pending), actor=staff_user)
    live = req.live_instance
    assert live_approval_is_current(live)
    for field, value in change.items():
        setattr(live, field, D(value) if field == "max_daily_loss" else value)
    live.save()
    assert not live_approval_is_current(live)


def test_name_change_keeps_the_approval(staff_user, pending):
    from stratbox.governance.services import live_request_approve

    live = live_request_approve(
        request=LiveApprovalRequest.objects.get(pk=pending), actor=staff_user
    ).live_instance
    live.name = "renamed"
    live.save()
    assert live_approval_is_current(live)


def test_reject_needs_a_reason_and_is_shown_to_the_tenant(api_client, staff_client, pending):
    r = staff_client.post(f"/api/v1/staff/live-requests/{pending}/reject/", {}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "reason"
    assert LiveApprovalRequest.objects.get(pk=pending).status == "pending"
    r = staff_client.post(
        f"/api/v1/staff/live-requests/{pending}/reject/", {"reason": "drawdown too close"}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    mine = api_client.get(f"/api/v1/live-requests/{pending}/").json()
    assert mine["status"] == "rejected" and mine["decision_reason"] == "drawdown too close"
    assert not StrategyInstance.objects.filter(account__kind="live").exists()
    # Decided: approve and reject again are 409.
    again = staff_client.post(f"/api/v1/staff/live-requests/{pending}/approve/", {}, format="json")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "REQUEST_NOT_PENDING"
    assert AuditEvent.objects.filter(action="live_request.reject").count() == 1


def test_approve_refused_when_the_paper_instance_changed_since_the_request(
    api_client, staff_client, pending, paper_instance
):
    api_client.patch(f"/api/v1/instances/{paper_instance.pk}/", {"capital_per_trade": "10.00"}, format="json")
    r = staff_client.post(f"/api/v1/staff/live-requests/{pending}/approve/", {}, format="json")
    assert r.status_code == 409 and r.json()["errors"][0]["code"] == "REQUEST_STALE"
    assert LiveApprovalRequest.objects.get(pk=pending).status == "pending"
    assert not StrategyInstance.objects.filter(account__kind="live").exists()


def test_revoke_when_not_running_moves_active_to_observe(
    api_client, staff_client, staff_user, pending, market
):
    """The engine cannot pause an instance it has not loaded: the safe fallback is observe."""
    from stratbox.governance.services import live_request_approve

    live = live_request_approve(
        request=LiveApprovalRequest.objects.get(pk=pending), actor=staff_user
    ).live_instance
    api_client.post(f"/api/v1/instances/{live.pk}/mode/", {"mode": "active"}, format="json")
    r = staff_client.post(
        f"/api/v1/staff/live-requests/{pending}/revoke/", {"reason": "abuse"}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["approval_current"] is False
    live.refresh_from_db()
    assert live.mode == "observe" and not live_approval_is_current(live)
    assert AuditEvent.objects.filter(action="live_request.revoke", actor=staff_user).exists()
    assert AuditEvent.objects.filter(
        action="instance.mode", target_id=str(live.pk), after={"mode": "observe"}
    ).exists()
    again = staff_client.post(
        f"/api/v1/staff/live-requests/{pending}/revoke/", {"reason": "x"}, format="json"
    )
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "REQUEST_NOT_APPROVED"


def test_instance_page_shows_the_request_status_to_its_tenant_only(
    pending, paper_instance, user, other_user, other_tenant, staff_client
) -> None:
    from django.test import Client

    page = f"/instances/{paper_instance.pk}/"
    owner = Client()
    owner.force_login(user)
    assert 'data-governance="pending"' in owner.get(page).content.decode()

    r = staff_client.post(f"/api/v1/staff/live-requests/{pending}/reject/", {"reason": "too short a record"})
    assert r.status_code == 200, r.content
    html = owner.get(page).content.decode()
    assert 'data-governance="rejected"' in html and "too short a record" in html

    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(page).status_code == 404
