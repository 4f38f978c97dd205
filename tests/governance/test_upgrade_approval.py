"""Upgrading a live instance: its approval covered the old version, so live trading stops (active ->
observe, and the risk gate denies NOT_APPROVED) until staff approve again; the request shows it."""

from __future__ import annotations

import uuid
from datetime import timedelta

from stratbox.governance.models import LiveApprovalRequest
from stratbox.governance.selectors import live_approval_is_current
from stratbox.governance.services import live_request_approve
from stratbox.instances.models import StrategyInstance
from strategies_store.models import StrategyVersion
from tests.governance.conftest import graduate
from tests.trading.conftest import NOW, Intents, make_quote, place


def test_upgrading_an_approved_live_instance_stops_live_trading(
    api_client, staff_user, paper_instance, live_account, market
):
    graduate(paper_instance)
    r = api_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(live_account.pk)},
        format="json",
    )
    assert r.status_code == 201
    request = live_request_approve(
        request=LiveApprovalRequest.objects.get(pk=r.json()["id"]), actor=staff_user
    )
    live = request.live_instance
    assert (
        api_client.post(f"/api/v1/instances/{live.pk}/mode/", {"mode": "active"}, format="json").status_code
        == 200
    )
    live.refresh_from_db()
    assert live_approval_is_current(live)
    StrategyVersion.objects.create(
        definition=live.strategy, number=2, source="x = 2", sha256=uuid.uuid4().hex
    )

    response = api_client.post(f"/api/v1/instances/{live.pk}/upgrade/", {"version": 2}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["report"]["live_trading_paused"] is True
    live = StrategyInstance.objects.get(pk=live.pk)
    assert live.mode == "observe" and live.version.number == 2
    assert not live_approval_is_current(live)
    assert api_client.get(f"/api/v1/live-requests/{request.pk}/").json()["approval_current"] is False
    # Even switched back to active by hand, the risk gate refuses its orders.
    assert (
        api_client.post(f"/api/v1/instances/{live.pk}/mode/", {"mode": "active"}, format="json").status_code
        == 200
    )
    live.refresh_from_db()
    intent = Intents(live)("buy", 1.0, client_order_id=f"{live.pk}-9-1")
    result = place(live, intent, make_quote(market, 100), now=NOW + timedelta(days=40))
    assert result.status == "rejected" and result.deny_code == "NOT_APPROVED"
    # Rolling back to the approved version makes the approval current again: it is bound to v1 + config.
    back = api_client.post(f"/api/v1/instances/{live.pk}/upgrade/", {"version": 1}, format="json")
    assert back.status_code == 200
    live.refresh_from_db()
    assert live_approval_is_current(live)
