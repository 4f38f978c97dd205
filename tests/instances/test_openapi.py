"""The OpenAPI document describes the instance endpoints' request and response bodies."""

from __future__ import annotations

from typing import Any


def test_schema_documents_instance_bodies(api_client: Any) -> None:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    import json

    import yaml

    raw = response.content.decode()
    schema = json.loads(raw) if raw.lstrip().startswith("{") else yaml.safe_load(raw)
    paths = schema["paths"]
    create = paths["/api/v1/instances/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "InstanceCreateInputRequest"
    )
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "InstanceOutput"
    )
    listing = paths["/api/v1/instances/"]["get"]
    assert {"mode", "strategy", "market", "account", "ordering", "limit"} <= {
        p["name"] for p in listing["parameters"]
    }
    detail = paths["/api/v1/instances/{instance_id}/"]
    assert {"get", "patch", "put", "delete"} <= set(detail)
    assert "409" in detail["delete"]["responses"]
    mode = paths["/api/v1/instances/{instance_id}/mode/"]["post"]
    assert mode["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("ModeInputRequest")
    assert "409" in mode["responses"]
    output = schema["components"]["schemas"]["InstanceOutput"]["properties"]
    assert {"identity", "config", "total_capital", "frequency_seconds", "mode", "config_revision"} <= set(
        output
    )
