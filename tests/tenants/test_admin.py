"""Django admin: staff edit capital limits (audited); tokens read-only but revocable; audit log immutable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant
from tenants.services import token_create
from tests.factories import make_user


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(make_user("staff@stratbox.test", is_staff=True, is_superuser=True))
    return client


def tenant_form(tenant: Tenant, **changes: Any) -> dict[str, Any]:
    return {"name": tenant.name, "capital_limit": str(tenant.capital_limit), **changes}


def test_staff_changes_capital_limit_and_it_is_audited(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", tenant_form(tenant, capital_limit="250000.50")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("250000.50")
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.capital_limit")
    assert event.actor_label == "staff@stratbox.test"
    assert event.before == {"capital_limit": "100000.00"}
    assert event.after == {"capital_limit": "250000.50"}


def test_staff_with_only_the_change_permission_can_edit(db: None, tenant: Tenant) -> None:
    staff = make_user("ops@stratbox.test", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_tenant"))
    client = Client()
    client.force_login(staff)
    response = client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", tenant_form(tenant, capital_limit="5")
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("5.00")


def test_negative_capital_limit_is_refused(admin_client: Client, tenant: Tenant) -> None:
    response = admin_client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", tenant_form(tenant, capital_limit="-1")
    )
    assert response.status_code == 200
    assert "capital_limit" in response.context["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("100000.00")
    assert not AuditEvent.objects.filter(action="tenant.capital_limit").exists()


def test_non_staff_cannot_reach_the_admin(user: Any, tenant: Tenant) -> None:
    client = Client()
    client.force_login(user)
    response = client.post(
        f"/admin/tenants/tenant/{tenant.pk}/change/", tenant_form(tenant, capital_limit="1")
    )
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("100000.00")


def test_tenant_page_shows_kill_switch_read_only(admin_client: Client, tenant: Tenant) -> None:
    page = admin_client.get(f"/admin/tenants/tenant/{tenant.pk}/change/")
    assert page.status_code == 200
    assert "killed_at" in page.context["adminform"].readonly_fields
    assert "Killed at" in page.content.decode()
    assert admin_client.get("/admin/tenants/tenant/").status_code == 200


def test_token_admin_hides_digest_and_only_revokes(admin_client: Client, tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="ci")
    page = admin_client.get(f"/admin/tenants/apitoken/{issued.token.pk}/change/")
    assert page.status_code == 200
    assert issued.token.digest not in page.content.decode()
    assert admin_client.get("/admin/tenants/apitoken/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/tenants/apitoken/{issued.token.pk}/change/", {"name": "x"}).status_code
        == 403
    )
    assert (
        admin_client.post(f"/admin/tenants/apitoken/{issued.token.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )

    response = admin_client.post(
        "/admin/tenants/apitoken/", {"action": "revoke", "_selected_action": [str(issued.token.pk)]}
    )
    assert response.status_code == 302
    token = ApiToken.objects.get(pk=issued.token.pk)
    assert (token.name, token.revoked_at is not None) == ("ci", True)
    assert AuditEvent.objects.get(action="token.revoke").actor_label == "staff@stratbox.test"


def test_audit_admin_is_strictly_read_only(admin_client: Client, tenant: Tenant) -> None:
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.create")
    assert admin_client.get("/admin/tenants/auditevent/").status_code == 200
    assert admin_client.get(f"/admin/tenants/auditevent/{event.pk}/change/").status_code == 200  # view only
    assert admin_client.get("/admin/tenants/auditevent/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/tenants/auditevent/{event.pk}/change/", {"action": "x"}).status_code == 403
    )
    assert (
        admin_client.post(f"/admin/tenants/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    response = admin_client.post(
        "/admin/tenants/auditevent/",
        {"action": "delete_selected", "_selected_action": [str(event.pk)], "post": "yes"},
    )
    assert AuditEvent.objects.filter(pk=event.pk, action="tenant.create").exists()
    assert response.status_code in (200, 302)


def test_membership_admin_protects_the_last_owner(admin_client: Client, tenant: Tenant, user: Any) -> None:
    owner = Membership.objects.get(tenant=tenant, user=user)
    response = admin_client.post(f"/admin/tenants/membership/{owner.pk}/change/", {"role": "viewer"})
    assert response.status_code == 200
    assert "last owner" in str(response.context["adminform"].form.errors)
    assert (
        admin_client.post(f"/admin/tenants/membership/{owner.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_membership_admin_changes_go_through_services(admin_client: Client, tenant: Tenant) -> None:
    newcomer = make_user("new@acme.test")
    response = admin_client.post(
        "/admin/tenants/membership/add/",
        {"tenant": str(tenant.pk), "user": str(newcomer.pk), "role": "member"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    membership = Membership.objects.get(tenant=tenant, user=newcomer)
    response = admin_client.post(f"/admin/tenants/membership/{membership.pk}/change/", {"role": "viewer"})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    assert (
        admin_client.post(f"/admin/tenants/membership/{membership.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    assert not Membership.objects.filter(pk=membership.pk).exists()
    actions = list(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="membership.").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["membership.create", "membership.delete", "membership.update"]
