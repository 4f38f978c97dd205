"""Signup through django-allauth: user + tenant + owner membership + audit, email verification."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from tenants.models import AuditEvent, Membership, Role, Tenant
from tests.factories import make_user

PASSWORD = "correct-horse-battery-42"
User = get_user_model()


@pytest.fixture(autouse=True)
def _locmem_mail(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def signup(client: Client, email: str, password: str = PASSWORD, password2: str | None = None) -> Any:
    return client.post(
        "/accounts/signup/", {"email": email, "password1": password, "password2": password2 or password}
    )


def counts() -> tuple[int, int, int, int]:
    return (
        User.objects.count(),
        Tenant.objects.count(),
        Membership.objects.count(),
        AuditEvent.objects.count(),
    )


def test_signup_creates_user_tenant_owner_membership_and_audit(db: None, settings: Any) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "none"
    client = Client()
    response = signup(client, "Ada@Example.test")
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(email__iexact="ada@example.test")
    membership = Membership.objects.select_related("tenant").get(user=user)
    assert membership.role == Role.OWNER
    assert membership.tenant.name.endswith("workspace")
    actions = set(AuditEvent.objects.filter(tenant=membership.tenant).values_list("action", flat=True))
    assert {"tenant.create", "account.signup"} <= actions
    # Signed in straight away when verification is off, and the session acts in the new tenant.
    api = client.get("/api/v1/tenant/")
    assert api.status_code == 200
    assert api.json()["id"] == str(membership.tenant_id)


def test_mandatory_verification_sends_mail_and_refuses_login_until_verified(db: None, settings: Any) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    client = Client()
    response = signup(client, "grace@example.test")
    assert response.status_code == 302
    assert "/accounts/confirm-email/" in response["Location"]
    user = User.objects.get(email="grace@example.test")
    assert Membership.objects.filter(user=user, role=Role.OWNER).count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["grace@example.test"]
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    assert "_auth_user_id" not in client.session

    # Login is refused (sent back to the verification page) until the address is confirmed.
    fresh = Client()
    response = fresh.post("/accounts/login/", {"login": "grace@example.test", "password": PASSWORD})
    assert response.status_code == 302
    assert "/accounts/confirm-email/" in response["Location"]
    assert "_auth_user_id" not in fresh.session
    assert fresh.get("/api/v1/tenant/").status_code in (401, 403)

    assert fresh.post(link.group(1)).status_code == 302
    response = fresh.post("/accounts/login/", {"login": "grace@example.test", "password": PASSWORD})
    assert response.status_code == 302
    assert fresh.session["_auth_user_id"] == str(user.pk)
    assert fresh.get("/api/v1/tenant/").status_code == 200


@pytest.mark.parametrize(
    ("password", "password2", "field"),
    [
        ("short", None, "password1"),
        ("password123", None, "password1"),
        (PASSWORD, "different-pass-99", "password2"),
    ],
)
def test_bad_passwords_give_form_errors_and_create_nothing(
    db: None, settings: Any, password: str, password2: str | None, field: str
) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "none"
    before = counts()
    response = signup(Client(), "weak@example.test", password, password2)
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert counts() == before


def test_duplicate_email_gives_a_form_error_and_creates_nothing(db: None, settings: Any) -> None:
    settings.ACCOUNT_EMAIL_VERIFICATION = "none"
    make_user("taken@example.test")
    before = counts()
    response = signup(Client(), "TAKEN@example.test")
    assert response.status_code == 200
    assert response.context["form"].errors.get("email")
    assert counts() == before


def test_duplicate_email_with_verification_reveals_nothing_and_creates_nothing(
    db: None, settings: Any
) -> None:
    """With mandatory verification allauth prevents account enumeration: same answer, a mail to the owner."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    make_user("taken@example.test")
    before = counts()
    response = signup(Client(), "taken@example.test")
    assert response.status_code in (200, 302)
    assert counts() == before
    assert [m.to for m in mail.outbox] == [["taken@example.test"]]


def test_bad_email_gives_a_form_error(db: None, settings: Any) -> None:
    before = counts()
    response = signup(Client(), "not-an-email")
    assert response.status_code == 200
    assert response.context["form"].errors.get("email")
    assert counts() == before
