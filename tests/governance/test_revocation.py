"""Revocation pauses a running live instance at once (through the engine) and is audited."""

from __future__ import annotations

import time
from decimal import Decimal as D

import pytest

from stratbox.engine import runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.governance.models import LiveApprovalRequest
from stratbox.governance.selectors import live_approval_is_current
from stratbox.governance.services import live_request_approve
from stratbox.trading.models import Order
from tenants.models import AuditEvent
from tests.engine.conftest import COUNTER, make_instance, make_version, set_quote
from tests.governance.conftest import graduate


@pytest.fixture(autouse=True)
def _fresh_sandbox_cache():
    from stratbox.engine import sandboxes

    sandboxes._held.clear()
    yield


def test_revocation_pauses_the_running_live_instance(
    api_client, staff_client, staff_user, tenant, paper_account, live_account, market
):
    version = make_version(tenant, COUNTER)
    paper = make_instance(
        version,
        paper_account,
        market,
        mode="active",
        total_capital=D("1000"),
        capital_per_trade=D("1000"),
        max_position_size=D("1000"),
        max_daily_loss=D("100000"),
    )
    graduate(paper)
    r = api_client.post(
        f"/api/v1/instances/{paper.pk}/live-request/", {"live_account": str(live_account.pk)}, format="json"
    )
    assert r.status_code == 201, r.content
    request = LiveApprovalRequest.objects.get(pk=r.json()["id"])
    live = live_request_approve(request=request, actor=staff_user, reason="ok").live_instance
    assert (
        api_client.post(f"/api/v1/instances/{live.pk}/mode/", {"mode": "active"}, format="json").status_code
        == 200
    )
    set_quote(market)
    reconcile([live.pk])
    assert runtime.rt_get(str(live.pk))["loaded"]

    r = staff_client.post(
        f"/api/v1/staff/live-requests/{request.pk}/revoke/", {"reason": "suspicious fills"}, format="json"
    )
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    rt = runtime.rt_get(str(live.pk))
    assert rt["paused"] and rt["pause_reason"] == "APPROVAL_REVOKED"
    live.refresh_from_db()
    assert live.mode == "active" and not live_approval_is_current(live)
    assert tick_run(live.pk, time.time()).status == "paused"
    assert not Order.objects.filter(instance=live).exists()
    assert AuditEvent.objects.filter(action="live_request.revoke", target_id=str(request.pk)).exists()
    assert AuditEvent.objects.filter(action="instance.pause", target_id=str(live.pk)).exists()
    assert api_client.get(f"/api/v1/live-requests/{request.pk}/").json()["approval_current"] is False
