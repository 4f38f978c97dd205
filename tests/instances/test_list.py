"""The instance list: filters, ordering, pagination, bad filter values."""

from __future__ import annotations

from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.instances.services import instance_create, instance_set_mode
from tests.instances.conftest import errors_by_attr

URL = "/api/v1/instances/"


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_filters_and_ordering(
    api_client: Any, user: Any, create_kwargs: dict[str, Any], catalog_strategy: Any, tenant: Any
) -> None:
    from stratbox.markets.models import Market
    from stratbox.trading.models import Account

    eth = Market.objects.create(venue="SIM", symbol="ETH/USDT")
    second = Account.objects.create(tenant=tenant, name="Second")
    a = instance_create(**{**create_kwargs, "name": "alpha"})
    instance_create(**{**create_kwargs, "name": "beta", "market_id": eth.id, "account_id": second.id})
    instance_create(**{**create_kwargs, "name": "gamma", "strategy_key": catalog_strategy.key})
    instance_set_mode(instance=a, actor=user, mode="observe")

    assert names(api_client.get(URL, {"ordering": "name"})) == ["alpha", "beta", "gamma"]
    assert names(api_client.get(URL, {"ordering": "-name"})) == ["gamma", "beta", "alpha"]
    assert names(api_client.get(URL, {"mode": "observe"})) == ["alpha"]
    assert names(api_client.get(URL, {"strategy": catalog_strategy.key})) == ["gamma"]
    assert names(api_client.get(URL, {"market": eth.id})) == ["beta"]
    assert names(api_client.get(URL, {"account": str(second.id)})) == ["beta"]
    page = api_client.get(URL, {"ordering": "name", "limit": 2, "offset": 1}).json()
    assert page["count"] == 3 and [r["name"] for r in page["results"]] == ["beta", "gamma"]


def test_bad_filter_values_are_400_naming_the_parameter(api_client: Any, instance: Any) -> None:
    for params, attr in (
        ({"mode": "paused"}, "mode"),
        ({"account": "nope"}, "account"),
        ({"ordering": "secret"}, "ordering"),
    ):
        response = api_client.get(URL, params)
        assert response.status_code == 400, params
        assert attr in errors_by_attr(response)
    assert StrategyInstance.objects.count() == 1
