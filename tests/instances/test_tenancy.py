"""Cross-tenant matrix: another tenant's instance is a 404 on every endpoint, never changed, never listed."""

from __future__ import annotations

from typing import Any

import pytest

from tenants.models import AuditEvent
from tests.instances.conftest import snapshot

ENDPOINTS = [
    ("get", "", None),
    ("patch", "", {"name": "pwned", "config": {"window": 3}}),
    ("put", "", {"name": "pwned"}),
    ("delete", "", None),
    ("post", "mode/", {"mode": "observe"}),
    ("post", "power/", {"on": True}),
    ("post", "activate/", {"active": True}),
]


@pytest.mark.parametrize(("method", "suffix", "payload"), ENDPOINTS)
def test_other_tenants_instance_is_404_and_unchanged(
    api_client: Any, other_instance: Any, method: str, suffix: str, payload: Any
) -> None:
    before = snapshot(other_instance)
    events = AuditEvent.objects.count()
    response = getattr(api_client, method)(
        f"/api/v1/instances/{other_instance.id}/{suffix}", payload, format="json"
    )
    assert response.status_code == 404
    assert "Globex" not in response.content.decode() and "pwned" not in response.content.decode()
    assert snapshot(other_instance) == before
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("method", "suffix", "payload"), ENDPOINTS)
def test_malformed_id_is_a_json_404(
    api_client: Any, db: None, method: str, suffix: str, payload: Any
) -> None:
    response = getattr(api_client, method)(f"/api/v1/instances/not-a-uuid/{suffix}", payload, format="json")
    assert response.status_code == 404
    assert response.json()["type"] == "client_error"


def test_list_shows_only_own_instances(
    api_client: Any, other_api_client: Any, instance: Any, other_instance: Any
) -> None:
    ids = [row["id"] for row in api_client.get("/api/v1/instances/").json()["results"]]
    assert ids == [str(instance.id)]
    other_ids = [row["id"] for row in other_api_client.get("/api/v1/instances/").json()["results"]]
    assert other_ids == [str(other_instance.id)]
    # Filtering by the other tenant's account or strategy key finds nothing, it does not error.
    response = api_client.get("/api/v1/instances/", {"account": str(other_instance.account_id)})
    assert response.status_code == 200 and response.json()["count"] == 0


def test_same_strategy_key_resolves_within_each_tenant(instance: Any, other_instance: Any) -> None:
    assert instance.strategy.key == other_instance.strategy.key == "t-sma"
    assert instance.strategy != other_instance.strategy
    assert instance.strategy.tenant_id == instance.tenant_id
    assert other_instance.strategy.tenant_id == other_instance.tenant_id


def test_viewer_can_read(viewer_client: Any, instance: Any) -> None:
    assert viewer_client.get(f"/api/v1/instances/{instance.id}/").status_code == 200
    assert viewer_client.get("/api/v1/instances/").json()["count"] == 1


def test_anonymous_is_refused(client: Any, instance: Any) -> None:
    assert client.get(f"/api/v1/instances/{instance.id}/").status_code in (401, 403)
    assert client.get("/api/v1/instances/").status_code in (401, 403)
