"""A new tenant starts with a paper account, created in the signup's own transaction."""

from decimal import Decimal

from django.test import Client

from stratbox.trading.models import Account
from tenants.models import AuditEvent, Membership


def test_signup_creates_a_paper_account_for_the_new_tenant(db: None) -> None:
    response = Client().post(
        "/accounts/signup/",
        {
            "email": "new@example.test",
            "password1": "a-long-test-password-1",
            "password2": "a-long-test-password-1",
        },
    )
    assert response.status_code == 302
    tenant = Membership.objects.get(user__email="new@example.test").tenant
    account = Account.objects.get(tenant=tenant)
    assert (account.name, account.kind) == ("Paper", "paper")
    assert account.balance == account.starting_balance == Decimal("100000")
    assert AuditEvent.objects.filter(tenant=tenant, action="account.create").count() == 1


def test_a_rejected_signup_creates_no_account(db: None) -> None:
    response = Client().post(
        "/accounts/signup/", {"email": "bad@example.test", "password1": "short", "password2": "short"}
    )
    assert response.status_code == 200
    assert not Account.objects.exists()
