"""Who may do what: staff-only endpoints refuse tenants (403); other tenants get 404; viewers 403."""

from __future__ import annotations

import pytest

from stratbox.governance.models import LiveApprovalRequest
from stratbox.instances.models import StrategyInstance
from tests.governance.conftest import graduate


@pytest.fixture
def pending(api_client, paper_instance, live_account) -> str:
    graduate(paper_instance)
    r = api_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(live_account.pk)},
        format="json",
    )
    assert r.status_code == 201
    return r.json()["id"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("get", "{id}/"),
        ("post", "{id}/approve/"),
        ("post", "{id}/reject/"),
        ("post", "{id}/revoke/"),
    ],
)
def test_staff_endpoints_refuse_tenants(api_client, other_api_client, viewer_client, pending, method, suffix):
    url = "/api/v1/staff/live-requests/" + suffix.format(id=pending)
    for client in (api_client, other_api_client, viewer_client):
        r = getattr(client, method)(url, {"reason": "me"}, format="json")
        assert r.status_code == 403, (url, r.status_code)
    assert LiveApprovalRequest.objects.get(pk=pending).status == "pending"
    assert not StrategyInstance.objects.filter(account__kind="live").exists()


def test_anonymous_is_refused(client, pending):
    r = client.get("/api/v1/staff/live-requests/")
    assert r.status_code in (401, 403)
    assert client.get("/api/v1/live-requests/").status_code in (401, 403)


def test_other_tenant_sees_and_touches_nothing(other_api_client, pending, paper_instance, live_account):
    assert other_api_client.get(f"/api/v1/live-requests/{pending}/").status_code == 404
    assert other_api_client.get("/api/v1/live-requests/").json()["results"] == []
    assert other_api_client.get(f"/api/v1/instances/{paper_instance.pk}/governance/").status_code == 404
    r = other_api_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(live_account.pk)},
        format="json",
    )
    assert r.status_code == 404
    assert LiveApprovalRequest.objects.count() == 1


def test_another_tenants_live_account_is_unknown(api_client, paper_instance, other_live_account):
    graduate(paper_instance)
    r = api_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(other_live_account.pk)},
        format="json",
    )
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "live_account"
    assert "Globex" not in r.content.decode() and not LiveApprovalRequest.objects.exists()


def test_viewer_cannot_request_but_can_read(viewer_client, paper_instance, live_account, pending):
    r = viewer_client.post(
        f"/api/v1/instances/{paper_instance.pk}/live-request/",
        {"live_account": str(live_account.pk)},
        format="json",
    )
    assert r.status_code == 403
    assert LiveApprovalRequest.objects.count() == 1
    assert [x["id"] for x in viewer_client.get("/api/v1/live-requests/").json()["results"]] == [pending]


def test_malformed_ids_are_json_404(api_client, staff_client):
    assert api_client.get("/api/v1/live-requests/nope/").status_code == 404
    assert api_client.post("/api/v1/instances/nope/live-request/", {}, format="json").status_code == 404
    assert staff_client.get("/api/v1/staff/live-requests/nope/").status_code == 404


def test_staff_queue_spans_tenants_and_filters_by_status(
    staff_client, pending, other_api_client, other_tenant, other_paper_account, other_live_account, market
):
    from tests.trading.conftest import make_instance

    theirs = make_instance(other_tenant, other_paper_account, market, max_daily_loss=100000)
    graduate(theirs)
    r = other_api_client.post(
        f"/api/v1/instances/{theirs.pk}/live-request/",
        {"live_account": str(other_live_account.pk)},
        format="json",
    )
    assert r.status_code == 201
    queue = staff_client.get("/api/v1/staff/live-requests/?status=pending").json()["results"]
    assert {q["tenant_name"] for q in queue} == {"Acme", "Globex"}
    assert staff_client.get("/api/v1/staff/live-requests/?status=approved").json()["results"] == []
