"""Adding a live account checks its credentials with one read-only call at the venue first."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from stratbox.trading.models import Account
from stratbox.trading.venue_accounts import adapter_for_account
from tests.venues.conftest import SimVenue

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _credentials_key(settings: Any) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


def _body(sim: SimVenue, credentials: dict[str, str]) -> dict[str, Any]:
    return {"name": "Live", "starting_balance": "1000", "broker": sim.name, "credentials": credentials}


def test_valid_credentials_are_checked_at_the_venue_and_stored(sim: SimVenue, api_client: Any) -> None:
    r = api_client.post("/api/v1/live-accounts/", _body(sim, sim.credentials), format="json")
    assert r.status_code == 201, r.json()
    assert any(method == "GET" for _key, method, _path in sim.venue.requests)  # the read-only call
    assert not any(method == "POST" for _key, method, _path in sim.venue.requests)
    account = Account.objects.get(pk=r.json()["id"])
    assert adapter_for_account(account).balances()  # the stored credentials work at the venue


def test_wrong_credentials_are_refused_with_the_venues_message(sim: SimVenue, api_client: Any) -> None:
    wrong = {k: (v + "-wrong" if "secret" in k else v) for k, v in sim.credentials.items()}
    r = api_client.post("/api/v1/live-accounts/", _body(sim, wrong), format="json")
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["attr"] == "credentials" and "VENUE_AUTH_FAILED" in error["detail"]
    assert wrong[next(k for k in wrong if "secret" in k)] not in str(r.json())
    assert not Account.objects.filter(kind="live").exists()


def test_an_unreachable_venue_refuses_the_account(alpaca: SimVenue, api_client: Any) -> None:
    alpaca.server.stop()
    r = api_client.post("/api/v1/live-accounts/", _body(alpaca, alpaca.credentials), format="json")
    assert r.status_code == 400 and "VENUE_UNAVAILABLE" in r.json()["errors"][0]["detail"]
    assert not Account.objects.filter(kind="live").exists()


def test_credentials_that_cannot_be_stored_never_reach_the_venue(
    alpaca: SimVenue, api_client: Any, settings: Any
) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = []  # no key: they would have to be stored in plaintext
    r = api_client.post("/api/v1/live-accounts/", _body(alpaca, alpaca.credentials), format="json")
    assert r.status_code == 400 and "STRATBOX_CREDENTIALS_KEYS" in r.json()["errors"][0]["detail"]
    assert alpaca.venue.requests == []
    assert not Account.objects.filter(kind="live").exists()


def test_the_dashboards_generic_key_names_work_for_every_venue(sim: SimVenue, api_client: Any) -> None:
    values = list(sim.credentials.values())
    generic = {"api_key": values[0], "api_secret": values[1]}  # what the dashboard's form sends
    r = api_client.post("/api/v1/live-accounts/", _body(sim, generic), format="json")
    assert r.status_code == 201, r.json()
    assert adapter_for_account(Account.objects.get(pk=r.json()["id"])).balances()
