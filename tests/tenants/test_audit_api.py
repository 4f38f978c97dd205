"""GET /api/v1/audit-events/: read-only, newest first, filterable, paginated, tenant-scoped."""

from __future__ import annotations

from typing import Any

from tenants.models import AuditEvent, Tenant
from tenants.services import audit_record, token_create

URL = "/api/v1/audit-events/"


def test_newest_first_with_fields(api_client: Any, tenant: Tenant, user: Any) -> None:
    audit_record(tenant=tenant, actor=user, action="custom.one", target_type="x", target_id="1")
    audit_record(tenant=tenant, actor=user, action="custom.two", target_type="x", target_id="2")
    response = api_client.get(URL)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["action"] for r in rows[:2]] == ["custom.two", "custom.one"]
    assert rows[-1]["action"] == "tenant.create"
    assert set(rows[0]) == {
        "id",
        "at",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "before",
        "after",
    }
    assert rows[0]["actor_label"] == user.email


def test_filters(api_client: Any, tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="a")
    token_create(tenant=tenant, user=user, name="b")
    by_action = api_client.get(URL, {"action": "token.create"}).json()
    assert by_action["count"] == 3  # the fixture's token too
    by_target = api_client.get(
        URL, {"target_type": "tenants.apitoken", "target_id": str(issued.token.id)}
    ).json()
    assert [r["after"]["name"] for r in by_target["results"]] == ["a"]
    assert api_client.get(URL, {"action": "nothing.such"}).json()["count"] == 0


def test_paginated(api_client: Any, tenant: Tenant, user: Any) -> None:
    for i in range(5):
        audit_record(tenant=tenant, actor=user, action="bulk", target_id=str(i))
    page = api_client.get(URL, {"action": "bulk", "limit": 2, "offset": 2}).json()
    assert page["count"] == 5
    assert [r["target_id"] for r in page["results"]] == ["2", "1"]
    assert page["next"] is not None and page["previous"] is not None


def test_read_only_for_everyone(api_client: Any, viewer_client: Any, tenant: Tenant) -> None:
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.create")
    assert viewer_client.get(f"{URL}{event.pk}/").status_code == 200
    assert api_client.post(URL, {"action": "forged"}, format="json").status_code == 405
    assert api_client.patch(f"{URL}{event.pk}/", {"action": "forged"}, format="json").status_code == 405
    assert api_client.delete(f"{URL}{event.pk}/").status_code == 405
    event.refresh_from_db()
    assert event.action == "tenant.create"
    assert not AuditEvent.objects.filter(action="forged").exists()


def test_other_tenant_never_sees_our_events(api_client: Any, other_api_client: Any, tenant: Tenant) -> None:
    ours = AuditEvent.objects.filter(tenant=tenant)
    listed = other_api_client.get(URL, {"limit": 500}).json()
    assert {r["id"] for r in listed["results"]}.isdisjoint(set(ours.values_list("id", flat=True)))
    for event in ours:
        response = other_api_client.get(f"{URL}{event.pk}/")
        assert response.status_code == 404
        assert "Acme" not in response.content.decode()
    # Filtering by our target ids finds nothing either.
    assert other_api_client.get(URL, {"target_id": str(tenant.id)}).json()["count"] == 0
