"""Regressions found by fuzzing (tests/api/test_fuzz.py): each documented or fixed behaviour, pinned."""

from __future__ import annotations

from typing import Any

from stratbox.instances.models import StrategyInstance
from tests.api.conftest import assert_standard_error
from tests.api.openapi import finished_schema


def _ref(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _error_attrs(schema: dict[str, Any], route: str, method: str) -> set[str]:
    """The attrs the 400 of an operation documents (through its per-field error components)."""
    body = schema["paths"][route][method]["responses"]["400"]["content"]["application/json"]["schema"]
    attrs: set[str] = set()
    for option in _ref(schema, body["$ref"]).get("oneOf", []):
        component = _ref(schema, option["$ref"])
        errors = component.get("properties", {}).get("errors")
        if errors:
            for item in _ref(schema, errors["items"]["$ref"]).get("anyOf", []):
                attrs.update(_ref(schema, item["$ref"]).get("properties", {}).get("attr", {}).get("enum", []))
    return attrs


def test_instance_list_filter_errors_keep_their_codes(api_client: Any) -> None:
    """Was `invalid` for every filter error (codes lost), while OpenAPI documents `invalid_choice`."""
    errors = assert_standard_error(
        api_client.get("/api/v1/instances/", {"mode": "bogus"}), 400, "validation_error"
    )
    assert [(e["attr"], e["code"]) for e in errors] == [("mode", "invalid_choice")]
    errors = assert_standard_error(
        api_client.get("/api/v1/instances/", {"ordering": "nope"}), 400, "validation_error"
    )
    assert [(e["attr"], e["code"]) for e in errors] == [("ordering", "invalid_choice")]
    assert not StrategyInstance.objects.exists()


def test_hand_validated_query_parameters_are_documented() -> None:
    schema = finished_schema()
    assert {"builtin", "style"} <= _error_attrs(schema, "/api/v1/strategies/", "get")
    assert "against" in _error_attrs(
        schema, "/api/v1/strategies/{strategy_id}/versions/{number}/diff/", "get"
    )


def test_validation_error_items_accept_run_time_attrs() -> None:
    """Unknown keys, `config.<field>` and upload parts are attrs known only at run time."""
    schema = finished_schema()
    item = schema["components"]["schemas"]["ValidationErrorItem"]
    assert item["required"] == ["code", "detail", "attr"]
    lists = [
        c for name, c in schema["components"]["schemas"].items() if name.endswith("Error") and "anyOf" in c
    ]
    assert lists and all({"$ref": "#/components/schemas/ValidationErrorItem"} in c["anyOf"] for c in lists)
    assert not [
        c
        for c in schema["components"]["schemas"].values()
        if c.get("discriminator", {}).get("propertyName") == "attr"
    ]


def test_account_create_documents_its_real_input() -> None:
    """Was documented with AccountOutput (id, balance, ...) as the request body."""
    schema = finished_schema()
    request = schema["paths"]["/api/v1/accounts/"]["post"]["requestBody"]["content"]["application/json"]
    component = _ref(schema, request["schema"]["$ref"])
    assert "starting_balance" in component["properties"] and "balance" not in component["properties"]
    assert "201" in schema["paths"]["/api/v1/accounts/"]["post"]["responses"]


def test_tenant_switch_documents_the_token_403(api_client: Any) -> None:
    schema = finished_schema()
    assert "403" in schema["paths"]["/api/v1/tenant/switch/"]["post"]["responses"]
    response = api_client.post(
        "/api/v1/tenant/switch/", {"tenant_id": "e3e70682-c209-1cac-a29f-6fbed82c07cd"}, format="json"
    )
    assert_standard_error(response, 403)  # api_client authenticates with a Bearer token


def test_upload_400_is_documented_with_line_and_col() -> None:
    schema = finished_schema()
    for route in ("/api/v1/strategies/", "/api/v1/strategies/{strategy_id}/versions/"):
        body = schema["paths"][route]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
        errors = _ref(schema, body["$ref"])["properties"]["errors"]
        item = _ref(schema, errors["items"]["$ref"])
        assert {"code", "detail", "attr", "line", "col"} <= set(item["properties"]), route
