"""Members: list, add by email, change role, remove; the last owner is protected; all audited."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant
from tenants.services import token_create
from tests.factories import add_member, make_user
from tests.tenants.conftest import error_attrs, error_codes

URL = "/api/v1/members/"


def membership_of(user: Any, tenant: Tenant) -> Membership:
    return Membership.objects.get(user=user, tenant=tenant)


def test_list_shows_email_and_role(api_client: Any, member_user: Any) -> None:
    response = api_client.get(URL)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["email"], r["role"]) for r in rows] == [
        ("owner@acme.test", "owner"),
        (member_user.email, "member"),
    ]


def test_viewer_can_list(viewer_client: Any) -> None:
    assert viewer_client.get(URL).json()["count"] == 2


def _token_from_mail(mailoutbox: Any) -> str:
    body = mailoutbox[-1].body
    return body.split("/invitations/", 1)[1].split("/", 1)[0]


def test_owner_invites_and_the_invited_user_accepts(api_client: Any, tenant: Tenant, mailoutbox: Any) -> None:
    newcomer = make_user("New.Comer@acme.test")
    response = api_client.post(URL, {"email": "new.comer@ACME.test", "role": "viewer"}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert (body["email"], body["role"], body["status"]) == ("new.comer@acme.test", "viewer", "invited")
    assert not Membership.objects.filter(user=newcomer, tenant=tenant).exists()  # no consent yet
    assert mailoutbox[-1].to == ["new.comer@acme.test"]
    token = _token_from_mail(mailoutbox)

    client = APIClient()
    client.force_authenticate(newcomer)
    accepted = client.post("/api/v1/invitations/accept/", {"token": token}, format="json")
    assert accepted.status_code == 201
    membership = membership_of(newcomer, tenant)
    assert membership.role == Role.VIEWER and accepted.json()["id"] == membership.pk
    event = AuditEvent.objects.get(tenant=tenant, action="membership.create")
    assert event.target_id == str(membership.pk) and event.actor_id == newcomer.pk
    # The link works once.
    again = client.post("/api/v1/invitations/accept/", {"token": token}, format="json")
    assert again.status_code == 400 and error_codes(again) == ["INVITATION_INVALID"]


def test_an_invitation_reveals_nothing_about_accounts(
    api_client: Any, tenant: Tenant, mailoutbox: Any
) -> None:
    make_user("known@acme.test")
    known = api_client.post(URL, {"email": "known@acme.test"}, format="json")
    unknown = api_client.post(URL, {"email": "nobody@acme.test"}, format="json")
    assert known.status_code == unknown.status_code == 202
    strip = lambda b: {k: v for k, v in b.items() if k not in ("id", "email", "created_at", "expires_at")}  # noqa: E731
    assert strip(known.json()) == strip(unknown.json()) == {"role": "member", "status": "invited"}
    listed = api_client.get("/api/v1/invitations/").json()
    assert sorted(r["email"] for r in listed["results"]) == ["known@acme.test", "nobody@acme.test"]


def test_only_the_invited_address_can_accept(api_client: Any, tenant: Tenant, mailoutbox: Any) -> None:
    api_client.post(URL, {"email": "invited@acme.test"}, format="json")
    token = _token_from_mail(mailoutbox)
    intruder = APIClient()
    intruder.force_authenticate(make_user("intruder@evil.test"))
    response = intruder.post("/api/v1/invitations/accept/", {"token": token}, format="json")
    assert response.status_code == 400 and error_codes(response) == ["INVITATION_INVALID"]
    assert not Membership.objects.filter(tenant=tenant, user__email="intruder@evil.test").exists()
    anonymous = APIClient().post("/api/v1/invitations/accept/", {"token": token}, format="json")
    assert anonymous.status_code == 401


def test_invite_refuses_bad_input(api_client: Any, tenant: Tenant) -> None:
    for payload, field, code in [
        ({"email": "not-an-email"}, "email", "invalid"),
        ({"email": "known@acme.test", "role": "admin"}, "role", "invalid_choice"),
    ]:
        response = api_client.post(URL, payload, format="json")
        assert response.status_code == 400, payload
        assert error_attrs(response) == [field]
        assert error_codes(response) == [code]
    assert not AuditEvent.objects.filter(action="invitation.create").exists()


def test_members_and_viewers_cannot_invite(member_client: Any, viewer_client: Any) -> None:
    for client in (member_client, viewer_client):
        assert client.post(URL, {"email": "x@acme.test"}, format="json").status_code == 403


def test_owner_changes_a_role(api_client: Any, tenant: Tenant, member_user: Any) -> None:
    membership = membership_of(member_user, tenant)
    response = api_client.patch(f"{URL}{membership.pk}/", {"role": "owner"}, format="json")
    assert response.status_code == 200
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    event = AuditEvent.objects.get(action="membership.update")
    assert (event.before["role"], event.after["role"]) == ("member", "owner")


def test_patch_refuses_email_and_bad_role(api_client: Any, tenant: Tenant, member_user: Any) -> None:
    membership = membership_of(member_user, tenant)
    response = api_client.patch(f"{URL}{membership.pk}/", {"role": "god"}, format="json")
    assert (response.status_code, error_attrs(response)) == (400, ["role"])
    response = api_client.patch(f"{URL}{membership.pk}/", {"role": "viewer", "email": "x@y.z"}, format="json")
    assert response.status_code == 400
    assert "email" in error_attrs(response)
    membership.refresh_from_db()
    assert membership.role == Role.MEMBER


def test_last_owner_cannot_be_demoted_or_removed(api_client: Any, tenant: Tenant, user: Any) -> None:
    owner = membership_of(user, tenant)
    response = api_client.patch(f"{URL}{owner.pk}/", {"role": "member"}, format="json")
    assert response.status_code == 400
    assert error_attrs(response) == ["role"]
    assert error_codes(response) == ["LAST_OWNER"]
    assert "last owner" in response.json()["errors"][0]["detail"]

    response = api_client.delete(f"{URL}{owner.pk}/")
    assert response.status_code == 400
    assert error_codes(response) == ["LAST_OWNER"]
    assert "last owner" in response.json()["errors"][0]["detail"]

    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not AuditEvent.objects.filter(action__in=["membership.update", "membership.delete"]).exists()


def test_an_owner_may_step_down_when_another_owner_remains(
    api_client: Any, tenant: Tenant, user: Any
) -> None:
    second = add_member(tenant, role="owner")
    response = api_client.patch(f"{URL}{membership_of(user, tenant).pk}/", {"role": "member"}, format="json")
    assert response.status_code == 200
    assert membership_of(second, tenant).role == Role.OWNER
    # Now a member, the former owner may no longer manage members.
    response = api_client.delete(f"{URL}{membership_of(second, tenant).pk}/")
    assert response.status_code == 403
    assert Membership.objects.filter(tenant=tenant, role=Role.OWNER).count() == 1


def test_remove_member_revokes_their_tokens_and_is_audited(api_client: Any, tenant: Tenant) -> None:
    leaver = add_member(tenant, role="member")
    issued = token_create(tenant=tenant, user=leaver, name="laptop")
    membership = membership_of(leaver, tenant)
    response = api_client.delete(f"{URL}{membership.pk}/")
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert ApiToken.objects.get(pk=issued.token.pk).revoked_at is not None
    event = AuditEvent.objects.get(action="membership.delete")
    assert (event.target_id, event.before) == (str(membership.pk), {"email": leaver.email, "role": "member"})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    assert client.get("/api/v1/tenant/").status_code == 401


def test_members_and_viewers_cannot_manage(
    member_client: Any, viewer_client: Any, tenant: Tenant, user: Any
) -> None:
    make_user("candidate@acme.test")
    owner = membership_of(user, tenant)
    for client in (member_client, viewer_client):
        assert client.post(URL, {"email": "candidate@acme.test"}, format="json").status_code == 403
        assert client.patch(f"{URL}{owner.pk}/", {"role": "viewer"}, format="json").status_code == 403
        assert client.delete(f"{URL}{owner.pk}/").status_code == 403
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert Membership.objects.filter(tenant=tenant).count() == 3
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


def test_other_tenant_cannot_see_or_touch_members(
    api_client: Any, other_api_client: Any, tenant: Tenant, member_user: Any
) -> None:
    target = membership_of(member_user, tenant)
    listed = other_api_client.get(URL).json()
    assert [row["email"] for row in listed["results"]] == ["owner@globex.test"]
    for method, payload in (("get", None), ("patch", {"role": "owner"}), ("delete", None)):
        response = getattr(other_api_client, method)(f"{URL}{target.pk}/", payload, format="json")
        assert response.status_code == 404, method
        assert member_user.email not in response.content.decode()
    target.refresh_from_db()
    assert target.role == Role.MEMBER
    # Inviting tenant A's user to tenant B is allowed (B's own data), adds nobody, leaves A untouched.
    assert other_api_client.post(URL, {"email": member_user.email}, format="json").status_code == 202
    assert Membership.objects.filter(tenant=tenant).count() == 2
    assert not Membership.objects.filter(user=member_user).exclude(tenant=tenant).exists()
    # B's invitations are B's: A's owner does not see them.
    assert api_client.get("/api/v1/invitations/").json()["count"] == 0
