"""Live accounts: owners only, credentials encrypted at rest (Fernet), write-only in the API."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from stratbox.trading.credentials import CredentialsUnavailable, credentials_decrypt
from stratbox.trading.models import Account
from stratbox.trading.services.accounts import account_credentials_rotate
from tenants.models import AuditEvent
from tests.factories import add_member, client_for

SECRET = {"api_key": "AKIA-live-key-000011112222", "api_secret": "very-secret-secret-XYZ9"}
BODY = {"name": "Binance", "starting_balance": "2500.00", "broker": "ccxt:binance", "credentials": SECRET}


def test_owner_creates_a_live_account_and_never_sees_the_secret_again(api_client):
    r = api_client.post("/api/v1/live-accounts/", BODY, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["kind"] == "live" and body["broker"] == "ccxt:binance" and body["has_credentials"] is True
    assert body["credentials_hint"] == "api_key: ••••2222, api_secret: ••••XYZ9"
    assert "credentials" not in body and "credentials_ciphertext" not in body
    for text in (
        r.content.decode(),
        api_client.get("/api/v1/accounts/").content.decode(),
        api_client.get(f"/api/v1/accounts/{body['id']}/").content.decode(),
    ):
        assert SECRET["api_key"] not in text and SECRET["api_secret"] not in text
    account = Account.objects.get(pk=body["id"])
    assert SECRET["api_secret"] not in account.credentials_ciphertext  # encrypted at rest
    assert credentials_decrypt(account.credentials_ciphertext) == SECRET
    event = AuditEvent.objects.get(action="account.create", target_id=str(account.pk))
    assert event.after["has_credentials"] is True and SECRET["api_key"] not in str(event.after)


def test_members_and_viewers_cannot_create_live_accounts(tenant, viewer_client):
    member = client_for(add_member(tenant, role="member"), tenant)
    assert member.post("/api/v1/live-accounts/", BODY, format="json").status_code == 403
    assert viewer_client.post("/api/v1/live-accounts/", BODY, format="json").status_code == 403
    assert not Account.objects.filter(kind="live").exists()


def test_no_key_configured_refuses_to_store_credentials(api_client, settings):
    settings.STRATBOX_CREDENTIALS_KEYS = []
    r = api_client.post("/api/v1/live-accounts/", BODY, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "credentials"
    assert "STRATBOX_CREDENTIALS_KEYS" in r.json()["errors"][0]["detail"]
    assert not Account.objects.filter(kind="live").exists()


def test_live_account_needs_a_broker_and_paper_endpoint_stays_paper(api_client):
    r = api_client.post("/api/v1/live-accounts/", {**BODY, "broker": ""}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "broker"
    r = api_client.post(
        "/api/v1/accounts/",
        {"name": "P", "starting_balance": "10", "kind": "live", "credentials": SECRET},
        format="json",
    )
    assert r.status_code == 201 and r.json()["kind"] == "paper" and r.json()["has_credentials"] is False
    assert not Account.objects.filter(kind="live").exists()


def test_other_tenant_cannot_see_the_live_account(api_client, other_api_client):
    account_id = api_client.post("/api/v1/live-accounts/", BODY, format="json").json()["id"]
    assert other_api_client.get(f"/api/v1/accounts/{account_id}/").status_code == 404
    assert all(a["id"] != account_id for a in other_api_client.get("/api/v1/accounts/").json()["results"])


def test_key_rotation_with_multifernet(api_client, settings):
    account_id = api_client.post("/api/v1/live-accounts/", BODY, format="json").json()["id"]
    old_key = settings.STRATBOX_CREDENTIALS_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.STRATBOX_CREDENTIALS_KEYS = [new_key, old_key]
    assert account_credentials_rotate() == 1
    settings.STRATBOX_CREDENTIALS_KEYS = [new_key]  # the old key is gone; the rotated data still opens
    assert credentials_decrypt(Account.objects.get(pk=account_id).credentials_ciphertext) == SECRET
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CredentialsUnavailable):
        credentials_decrypt(Account.objects.get(pk=account_id).credentials_ciphertext)


def test_admin_never_shows_the_ciphertext(api_client, staff_user, client):
    account_id = api_client.post("/api/v1/live-accounts/", BODY, format="json").json()["id"]
    staff_user.is_superuser = True
    staff_user.save()
    client.force_login(staff_user)
    page = client.get(f"/admin/trading/account/{account_id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert Account.objects.get(pk=account_id).credentials_ciphertext not in html
    assert SECRET["api_secret"] not in html and "••••XYZ9" in html


@pytest.mark.parametrize("name", ["api\x00key", "api\u0017key", "", "x" * 65, "api key"])
def test_credential_field_names_must_be_plain_identifiers(api_client, name):
    from stratbox.trading.models import Account

    r = api_client.post("/api/v1/live-accounts/", {**BODY, "credentials": {name: "secret"}}, format="json")
    assert r.status_code == 400, r.content
    assert r.json()["errors"][0]["attr"] == "credentials"
    assert not Account.objects.filter(kind="live").exists()
