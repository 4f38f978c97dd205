"""API tokens: create (plaintext shown once), list, revoke, and authentication with them."""

from __future__ import annotations

import json
from typing import Any

from rest_framework.test import APIClient

from tenants.models import ApiToken, AuditEvent, Tenant
from tenants.services import token_create, token_digest
from tests.factories import add_member, client_for
from tests.tenants.conftest import error_attrs

URL = "/api/v1/tokens/"


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def test_create_shows_plaintext_once_and_stores_only_the_digest(
    api_client: Any, tenant: Tenant, user: Any
) -> None:
    response = api_client.post(URL, {"name": "ci"}, format="json")
    assert response.status_code == 201
    body = response.json()
    plaintext = body["token"]
    assert plaintext.startswith(f"sbx_{body['prefix']}_")
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.tenant, token.user, token.name) == (tenant, user, "ci")
    assert token.digest == token_digest(plaintext)
    assert "digest" not in body
    assert AuditEvent.objects.filter(tenant=tenant, action="token.create", target_id=str(token.id)).exists()

    # Never again: neither the list, nor the detail, nor the audit log carry it or the digest.
    for path in (URL, f"{URL}{token.id}/", "/api/v1/audit-events/"):
        text = api_client.get(path).content.decode()
        assert plaintext not in text
        assert token.digest not in text
    # And the new token works.
    assert bearer(plaintext).get("/api/v1/tenant/").status_code == 200


def test_list_fields(api_client: Any) -> None:
    api_client.post(URL, {"name": "ci"}, format="json")
    response = api_client.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2  # the fixture's own token and "ci"
    row = body["results"][0]
    assert row["name"] == "ci"  # newest first
    assert set(row) == {
        "id",
        "name",
        "prefix",
        "user_email",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    }


def test_create_validates_name(api_client: Any, tenant: Tenant) -> None:
    before = ApiToken.objects.count()
    for payload in ({}, {"name": ""}, {"name": "x" * 81}):
        response = api_client.post(URL, payload, format="json")
        assert response.status_code == 400
        assert error_attrs(response) == ["name"]
    assert ApiToken.objects.count() == before


def test_revoke_by_delete_stops_authentication_at_once(tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="doomed")
    client = bearer(issued.plaintext)
    assert client.get("/api/v1/tenant/").status_code == 200

    response = client.delete(f"{URL}{issued.token.id}/")  # a token may revoke itself
    assert response.status_code == 204
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke", target_id=str(issued.token.id)).count() == 1

    response = client.get("/api/v1/tenant/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_revoke_action_is_idempotent_and_keeps_the_row(api_client: Any, tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="old")
    first = api_client.post(f"{URL}{issued.token.id}/revoke/")
    assert first.status_code == 200
    assert first.json()["revoked_at"] is not None
    second = api_client.post(f"{URL}{issued.token.id}/revoke/")
    assert second.status_code == 200
    assert second.json()["revoked_at"] == first.json()["revoked_at"]
    assert AuditEvent.objects.filter(action="token.revoke", target_id=str(issued.token.id)).count() == 1
    assert bearer(issued.plaintext).get("/api/v1/tenant/").status_code == 401
    listed = {row["id"]: row for row in api_client.get(URL).json()["results"]}
    assert listed[str(issued.token.id)]["revoked_at"] is not None


def test_viewer_cannot_create_or_revoke(viewer_client: Any, tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="owner's")
    before = ApiToken.objects.count()
    response = viewer_client.post(URL, {"name": "x"}, format="json")
    assert response.status_code == 403
    assert ApiToken.objects.count() == before
    # Even its own token: viewers are read-only everywhere.
    own = viewer_client.get(URL).json()["results"][0]["id"]
    for token_id in (own, issued.token.id):
        assert viewer_client.delete(f"{URL}{token_id}/").status_code == 403
        assert viewer_client.post(f"{URL}{token_id}/revoke/").status_code == 403
    assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()


def test_members_see_and_revoke_only_their_own(
    member_client: Any, member_user: Any, tenant: Tenant, user: Any
) -> None:
    owners = token_create(tenant=tenant, user=user, name="owner's")
    listed = member_client.get(URL).json()
    assert {row["user_email"] for row in listed["results"]} == {member_user.email}
    assert member_client.get(f"{URL}{owners.token.id}/").status_code == 404
    assert member_client.delete(f"{URL}{owners.token.id}/").status_code == 404
    owners.token.refresh_from_db()
    assert owners.token.revoked_at is None


def test_owner_revokes_a_members_token(api_client: Any, member_user: Any, tenant: Tenant) -> None:
    issued = token_create(tenant=tenant, user=member_user, name="member's")
    assert api_client.delete(f"{URL}{issued.token.id}/").status_code == 204
    assert bearer(issued.plaintext).get("/api/v1/tenant/").status_code == 401


def test_token_acts_in_its_own_tenant_only(user: Any, tenant: Tenant, other_tenant: Tenant) -> None:
    add_member(other_tenant, role="member", user=user)
    client = client_for(user, tenant)
    assert client.get("/api/v1/tenant/").json()["id"] == str(tenant.id)
    # A session switch cannot re-point a token: it is bound to its tenant.
    response = client.post("/api/v1/tenant/switch/", {"tenant_id": str(other_tenant.id)}, format="json")
    assert response.status_code == 403
    assert client.get("/api/v1/tenant/").json()["id"] == str(tenant.id)


def test_bad_authorization_headers_are_401(db: None) -> None:
    for header in ("Bearer", "Bearer a b", "Bearer sbx_nope_nope"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        response = client.get("/api/v1/tenant/")
        assert response.status_code == 401, header
        assert response["WWW-Authenticate"] == "Bearer"
        assert json.loads(response.content)["type"] == "client_error"


def test_other_tenant_cannot_touch_tokens(
    api_client: Any, other_api_client: Any, tenant: Tenant, user: Any
) -> None:
    issued = token_create(tenant=tenant, user=user, name="acme")
    listed = other_api_client.get(URL).json()["results"]
    assert str(issued.token.id) not in {row["id"] for row in listed}
    for method, path in (
        ("get", f"{URL}{issued.token.id}/"),
        ("delete", f"{URL}{issued.token.id}/"),
        ("post", f"{URL}{issued.token.id}/revoke/"),
    ):
        response = getattr(other_api_client, method)(path)
        assert response.status_code == 404, (method, path)
        assert "acme" not in response.content.decode()
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None
    assert bearer(issued.plaintext).get("/api/v1/tenant/").status_code == 200
