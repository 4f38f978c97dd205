"""Pagination bounds: no limit or offset in a query string reaches the database unchecked."""

import pytest


@pytest.mark.parametrize(
    "path", ["/api/v1/accounts/", "/api/v1/strategies/", "/api/v1/backtests/", "/api/v1/runs/"]
)
def test_an_offset_past_the_database_range_is_an_empty_page_not_a_500(api_client, paper_account, path):
    response = api_client.get(path, {"offset": 10**20, "limit": 10**20})
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


def test_limits_are_capped(api_client, tenant, user):
    from stratbox.trading.models import Account

    Account.objects.bulk_create(Account(tenant=tenant, name=f"A{i}") for i in range(510))
    response = api_client.get("/api/v1/accounts/", {"limit": 10_000})
    assert response.status_code == 200
    assert len(response.json()["results"]) == 500
