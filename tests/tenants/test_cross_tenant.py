"""Cross-tenant matrix: tenant B tries every tenants endpoint on tenant A's objects.

Every detail/update/delete/action answers 404, lists never show A's rows, errors never name
them, and A's rows are byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.forms.models import model_to_dict

from tenants.models import ApiToken, AuditEvent, Membership, Tenant
from tenants.services import token_create
from tests.factories import add_member, client_for


def snapshot(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenant": model_to_dict(Tenant.objects.get(pk=tenant.pk)),
        "tokens": [model_to_dict(t) for t in ApiToken.objects.filter(tenant=tenant).order_by("pk")],
        "members": [model_to_dict(m) for m in Membership.objects.filter(tenant=tenant).order_by("pk")],
        "audit": list(AuditEvent.objects.filter(tenant=tenant).order_by("pk").values()),
    }


@pytest.fixture
def tenant_a(tenant: Tenant, user: Any) -> dict[str, Any]:
    member = add_member(tenant, role="member", user=None)
    issued = token_create(tenant=tenant, user=member, name="acme-secret-name")
    return {
        "tenant": tenant,
        "token": issued.token,
        "plaintext": issued.plaintext,
        "member": Membership.objects.get(tenant=tenant, user=member),
        "owner": Membership.objects.get(tenant=tenant, user=user),
        "event": AuditEvent.objects.filter(tenant=tenant).latest("at"),
    }


@pytest.fixture(params=["owner", "viewer"])
def client_b(request: pytest.FixtureRequest, other_tenant: Tenant, other_user: Any) -> Any:
    if request.param == "owner":
        return client_for(other_user, other_tenant)
    return client_for(add_member(other_tenant, role="viewer"), other_tenant)


def detail_calls(a: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    token, member, owner, event = a["token"].pk, a["member"].pk, a["owner"].pk, a["event"].pk
    return [
        ("get", f"/api/v1/tokens/{token}/", None),
        ("delete", f"/api/v1/tokens/{token}/", None),
        ("post", f"/api/v1/tokens/{token}/revoke/", None),
        ("get", f"/api/v1/members/{member}/", None),
        ("patch", f"/api/v1/members/{member}/", {"role": "owner"}),
        ("delete", f"/api/v1/members/{member}/", None),
        ("patch", f"/api/v1/members/{owner}/", {"role": "viewer"}),
        ("delete", f"/api/v1/members/{owner}/", None),
        ("get", f"/api/v1/audit-events/{event}/", None),
    ]


def test_every_detail_and_action_is_404_and_changes_nothing(
    tenant_a: dict[str, Any], other_api_client: Any
) -> None:
    before = snapshot(tenant_a["tenant"])
    for method, path, payload in detail_calls(tenant_a):
        response = getattr(other_api_client, method)(path, payload, format="json")
        assert response.status_code == 404, (method, path, response.content)
        body = response.content.decode()
        for secret in ("Acme", "acme-secret-name", tenant_a["token"].prefix, str(tenant_a["tenant"].pk)):
            assert secret not in body, (method, path)
    assert snapshot(tenant_a["tenant"]) == before


def test_viewer_of_b_gets_no_hint_either(tenant_a: dict[str, Any], other_tenant: Tenant) -> None:
    """Reads are 404; writes are refused before any lookup (403 for every id), so nothing leaks."""
    viewer = client_for(add_member(other_tenant, role="viewer"), other_tenant)
    before = snapshot(tenant_a["tenant"])
    for method, path, payload in detail_calls(tenant_a):
        response = getattr(viewer, method)(path, payload, format="json")
        assert response.status_code == (404 if method == "get" else 403), (method, path)
        assert "acme-secret-name" not in response.content.decode()
    assert snapshot(tenant_a["tenant"]) == before


def test_lists_never_show_a_rows(tenant_a: dict[str, Any], client_b: Any) -> None:
    a = tenant_a["tenant"]
    a_ids = {
        "/api/v1/tokens/": {str(pk) for pk in ApiToken.objects.filter(tenant=a).values_list("pk", flat=True)},
        "/api/v1/members/": set(Membership.objects.filter(tenant=a).values_list("pk", flat=True)),
        "/api/v1/audit-events/": set(AuditEvent.objects.filter(tenant=a).values_list("pk", flat=True)),
    }
    for path, ids in a_ids.items():
        response = client_b.get(path, {"limit": 1000})
        assert response.status_code == 200
        listed = {row["id"] for row in response.json()["results"]}
        assert listed and listed.isdisjoint(ids), path
        assert "acme-secret-name" not in response.content.decode()
    tenant_view = client_b.get("/api/v1/tenant/").json()
    assert tenant_view["id"] != str(a.pk)


def test_b_writing_its_own_tenant_leaves_a_alone(tenant_a: dict[str, Any], other_api_client: Any) -> None:
    before = snapshot(tenant_a["tenant"])
    assert other_api_client.patch("/api/v1/tenant/", {"name": "Globex 2"}, format="json").status_code == 200
    assert other_api_client.post("/api/v1/tokens/", {"name": "b"}, format="json").status_code == 201
    # Filtering B's audit log by A's target ids finds nothing.
    response = other_api_client.get("/api/v1/audit-events/", {"target_id": str(tenant_a["token"].pk)})
    assert response.json()["count"] == 0
    assert snapshot(tenant_a["tenant"]) == before
