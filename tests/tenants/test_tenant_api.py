"""GET/PATCH /api/v1/tenant/ and POST /api/v1/tenant/switch/."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework.test import APIClient

from tenants.models import AuditEvent, Tenant
from tenants.scoping import SESSION_TENANT_KEY
from tests.factories import add_member, make_tenant, make_user
from tests.tenants.conftest import error_attrs, error_codes

URL = "/api/v1/tenant/"


def test_get_returns_callers_tenant_and_role(api_client: Any, tenant: Tenant) -> None:
    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(tenant.id)
    assert body["name"] == "Acme"
    assert body["role"] == "owner"
    assert Decimal(body["capital_limit"]) == tenant.capital_limit
    assert body["killed_at"] is None


def test_viewer_reads_with_its_role(viewer_client: Any) -> None:
    response = viewer_client.get(URL)
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"


def test_owner_renames_and_it_is_audited(api_client: Any, tenant: Tenant) -> None:
    response = api_client.patch(URL, {"name": "Acme Capital"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme Capital"
    tenant.refresh_from_db()
    assert tenant.name == "Acme Capital"
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.update")
    assert event.before == {"name": "Acme"}
    assert event.after == {"name": "Acme Capital"}


def test_patch_capital_limit_is_refused_naming_the_field(api_client: Any, tenant: Tenant) -> None:
    response = api_client.patch(URL, {"capital_limit": "99999999"}, format="json")
    assert response.status_code == 400
    assert error_attrs(response) == ["capital_limit"]
    assert error_codes(response) == ["read_only"]
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("100000.00")


def test_patch_name_with_capital_limit_changes_nothing(api_client: Any, tenant: Tenant) -> None:
    response = api_client.patch(URL, {"name": "X", "capital_limit": "1", "killed_at": None}, format="json")
    assert response.status_code == 400
    assert set(error_attrs(response)) == {"capital_limit", "killed_at"}
    tenant.refresh_from_db()
    assert (tenant.name, tenant.capital_limit, tenant.killed_at) == ("Acme", Decimal("100000.00"), None)
    assert not AuditEvent.objects.filter(tenant=tenant, action="tenant.update").exists()


def test_blank_name_is_refused(api_client: Any, tenant: Tenant) -> None:
    response = api_client.patch(URL, {"name": "  "}, format="json")
    assert response.status_code == 400
    assert error_attrs(response) == ["name"]
    tenant.refresh_from_db()
    assert tenant.name == "Acme"


def test_member_and_viewer_cannot_rename(member_client: Any, viewer_client: Any, tenant: Tenant) -> None:
    for client in (member_client, viewer_client):
        response = client.patch(URL, {"name": "Hijacked"}, format="json")
        assert response.status_code == 403
        assert response.json()["type"] == "client_error"
    tenant.refresh_from_db()
    assert tenant.name == "Acme"


def test_other_tenant_sees_only_its_own(other_api_client: Any, tenant: Tenant, other_tenant: Tenant) -> None:
    response = other_api_client.get(URL)
    assert response.json()["id"] == str(other_tenant.id)
    assert other_api_client.patch(URL, {"name": "Mine"}, format="json").status_code == 200
    tenant.refresh_from_db()
    assert tenant.name == "Acme"


# --- switching (session users) ------------------------------------------------------------


def test_session_user_switches_between_memberships(user: Any, tenant: Tenant) -> None:
    second = make_tenant("Second", owner=make_user())
    add_member(second, role="viewer", user=user)
    client = APIClient()
    client.force_login(user)
    assert client.get(URL).json()["id"] == str(tenant.id)

    response = client.post(f"{URL}switch/", {"tenant_id": str(second.id)}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == str(second.id)
    assert response.json()["role"] == "viewer"
    assert client.session[SESSION_TENANT_KEY] == str(second.id)
    # The choice sticks for later requests, with the role of that membership.
    assert client.get(URL).json()["id"] == str(second.id)
    assert client.patch(URL, {"name": "x"}, format="json").status_code == 403


def test_switch_to_a_tenant_without_membership_is_404(
    user: Any, tenant: Tenant, other_tenant: Tenant
) -> None:
    client = APIClient()
    client.force_login(user)
    response = client.post(f"{URL}switch/", {"tenant_id": str(other_tenant.id)}, format="json")
    assert response.status_code == 404
    assert SESSION_TENANT_KEY not in client.session
    assert client.get(URL).json()["id"] == str(tenant.id)
    assert "Globex" not in response.content.decode()


def test_switch_validates_tenant_id(user: Any, tenant: Tenant) -> None:
    client = APIClient()
    client.force_login(user)
    for payload in ({}, {"tenant_id": "not-a-uuid"}):
        response = client.post(f"{URL}switch/", payload, format="json")
        assert response.status_code == 400
        assert error_attrs(response) == ["tenant_id"]


def test_token_clients_cannot_switch(api_client: Any, user: Any, tenant: Tenant) -> None:
    second = make_tenant("Second", owner=user)
    response = api_client.post(f"{URL}switch/", {"tenant_id": str(second.id)}, format="json")
    assert response.status_code == 403
    assert api_client.get(URL).json()["id"] == str(tenant.id)
