"""The documented flow, driven only through operations of the served OpenAPI schema (/api/schema/).

Every request is built from an operation of the schema (as a generated client would) and every
response is validated against that operation's documented responses: create a token, upload a
tick strategy, create an instance with config, patch the config, power it to observe, and read
the audit log that shows each step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from schemathesis.specs.openapi import checks as openapi_checks

from stratbox.instances.models import StrategyInstance
from tests.api.openapi import InTransactionWsgiApp
from tests.api.test_fuzz import TICK_SOURCE, standard_error_body

CHECKS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def client_api(db: None) -> Iterator[Any]:
    """The schema as served at /api/schema/, bound to Django's WSGI app (in the test transaction)."""
    app = InTransactionWsgiApp()
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", app, headers={"Accept": "application/json"})
    finally:
        app.reconnect()


class Client:
    """A minimal generated-style client: one call = one documented operation, validated."""

    def __init__(self, schema: Any, token: str) -> None:
        self.schema = schema
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, *, expect: int, **case: Any) -> Any:
        operation = self.schema[path][method]  # KeyError: the endpoint is not documented
        if "body" in case:
            case.setdefault("media_type", "application/json")
        made = operation.Case(**case)
        response = made.call(headers=self.headers)
        made.validate_response(response, checks=CHECKS, additional_checks=[standard_error_body])
        assert response.status_code == expect, response.text[:2000]
        return response.json() if response.content else None


def test_documented_flow_with_a_bearer_token(
    client_api: Any, api_client: Any, paper_account: Any, market: Any
) -> None:
    every = ["read", "strategies:write", "instances:write", "instances:control", "backtests:run", "admin"]
    bootstrap = api_client.post(
        "/api/v1/tokens/", {"name": "bootstrap", "scopes": every}, format="json"
    ).json()["token"]
    created = Client(client_api, bootstrap).call(
        "POST", "/api/v1/tokens/", expect=201, body={"name": "ci", "scopes": every[:-1]}
    )
    assert created["scopes"] == every[:-1]
    assert created["token"].startswith("sbx_")
    api = Client(client_api, created["token"])

    strategy = api.call(
        "POST",
        "/api/v1/strategies/",
        expect=201,
        body={"key": "flow-tick", "name": "Flow tick", "source": TICK_SOURCE},
    )
    assert strategy["style"] == "tick"

    accounts = api.call("GET", "/api/v1/accounts/", expect=200)["results"]
    markets = api.call("GET", "/api/v1/markets/", expect=200)["results"]
    account = next(a for a in accounts if a["kind"] == "paper")
    instance = api.call(
        "POST",
        "/api/v1/instances/",
        expect=201,
        body={
            "name": "Flow",
            "strategy": "flow-tick",
            "account": account["id"],
            "market": markets[0]["id"],
            "config": {"window": 30},
        },
    )
    assert instance["config"] == {"window": 30} and instance["mode"] == "off"
    path = {"instance_id": instance["id"]}

    patched = api.call(
        "PATCH",
        "/api/v1/instances/{instance_id}/",
        expect=200,
        path_parameters=path,
        body={"config": {"window": 40}},
    )
    assert patched["config"] == {"window": 40}
    bad = api.call(
        "PATCH",
        "/api/v1/instances/{instance_id}/",
        expect=400,
        path_parameters=path,
        body={"config": {"window": 1}},
    )
    assert bad["errors"][0]["attr"].startswith("config")

    observed = api.call(
        "POST",
        "/api/v1/instances/{instance_id}/mode/",
        expect=200,
        path_parameters=path,
        body={"mode": "observe"},
    )
    assert observed["mode"] == "observe"
    assert StrategyInstance.objects.get(pk=instance["id"]).config == {"window": 40}

    events = api.call("GET", "/api/v1/audit-events/", expect=200, query={"limit": 50})["results"]
    actions = [event["action"] for event in reversed(events)]
    steps = ["token.create", "strategy.upload", "instance.create", "instance.config", "instance.mode"]
    positions = [actions.index(step) for step in steps]
    assert positions == sorted(positions), actions
    assert actions.count("instance.config") == 1  # the refused patch changed and recorded nothing
