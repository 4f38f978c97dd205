"""Scoped write throttles: strategy/version uploads and token creation answer 429 past their rate."""

from __future__ import annotations

from typing import Any

import pytest

from strategies_store.models import StrategyDefinition
from tenants.models import ApiToken
from tests.api.conftest import assert_standard_error
from tests.factories import add_member, client_for, make_user


@pytest.fixture
def rates(settings: Any) -> dict[str, str]:
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "uploads": "2/min", "token_create": "2/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    return rates


def test_defaults_are_configured() -> None:
    from django.conf import settings

    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert rates["uploads"] == "30/min" and rates["token_create"] == "10/min"


def test_token_creation_is_throttled_per_user(rates: Any, api_client: Any, tenant: Any) -> None:
    for n in range(2):
        assert api_client.post("/api/v1/tokens/", {"name": f"t{n}"}, format="json").status_code == 201
    before = ApiToken.objects.count()
    response = api_client.post("/api/v1/tokens/", {"name": "t3"}, format="json")
    errors = assert_standard_error(response, 429)
    assert errors[0]["code"] == "throttled" and int(response["Retry-After"]) > 0
    assert ApiToken.objects.count() == before  # nothing created
    assert api_client.get("/api/v1/tokens/").status_code == 200  # reads are never counted
    # Another user of the same tenant has their own budget.
    colleague = make_user()
    add_member(tenant, role="member", user=colleague)
    other = client_for(colleague, tenant)
    assert other.post("/api/v1/tokens/", {"name": "o"}, format="json").status_code == 201


def test_uploads_share_one_budget_and_reads_are_free(rates: Any, api_client: Any) -> None:
    # Invalid uploads still cost: the budget protects the validation work, not only successes.
    for n in range(2):
        response = api_client.post("/api/v1/strategies/", {"key": f"k{n}", "name": "x"}, format="json")
        assert response.status_code == 400
    for _ in range(3):
        assert api_client.get("/api/v1/strategies/").status_code == 200
    response = api_client.post(
        "/api/v1/strategies/", {"key": "k9", "name": "x", "source": "x = 1"}, format="json"
    )
    assert assert_standard_error(response, 429)[0]["code"] == "throttled"
    strategy_id = api_client.get("/api/v1/strategies/", {"builtin": "true"}).json()["results"]
    target = strategy_id[0]["id"] if strategy_id else "00000000-0000-0000-0000-000000000000"
    response = api_client.post(f"/api/v1/strategies/{target}/versions/", {"source": "x = 1"}, format="json")
    assert_standard_error(response, 429)  # versions draw from the same "uploads" budget
    assert not StrategyDefinition.objects.filter(key="k9").exists()


def test_throttle_is_documented_as_429() -> None:
    from tests.api.openapi import finished_schema

    paths = finished_schema()["paths"]
    assert "429" in paths["/api/v1/tokens/"]["post"]["responses"]
    assert "429" in paths["/api/v1/strategies/"]["post"]["responses"]
    assert "429" in paths["/api/v1/strategies/{strategy_id}/versions/"]["post"]["responses"]
