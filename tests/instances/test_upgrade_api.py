"""POST /api/v1/instances/{id}/upgrade/: config migration, 400s naming the field, rollback, audit,
scopes, tenants, and a live instance's approval."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sandbox import validate_source
from stratbox.instances.models import StrategyInstance
from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import AuditEvent
from tests.factories import add_member, client_for

V1 = """from sandbox.sdk import Strategy


class S(Strategy):
    CONFIG_SCHEMA = {
        "window": {"type": "int", "default": 20, "min": 2, "max": 500},
        "mode_name": {"type": "choice", "default": "fast", "choices": ["fast", "slow"]},
        "legacy": {"type": "bool", "default": False},
    }

    def init(self):
        return {}

    def on_tick(self, tick):
        pass
"""

V2 = V1.replace('"max": 500', '"max": 50').replace(
    '"legacy": {"type": "bool", "default": False},',
    '"threshold": {"type": "float", "default": 0.5, "min": 0, "max": 1},',
)


def _version(definition: Any, number: int, source: str) -> Any:
    report = validate_source(source)
    assert report.ok, report.errors
    return StrategyVersion.objects.create(
        definition=definition,
        number=number,
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        config_schema=report.config_schema,
    )


@pytest.fixture
def instance(tenant: Any, api_client: Any, paper_account: Any, market: Any) -> Any:
    definition = StrategyDefinition.objects.create(tenant=tenant, key="up", name="Up")
    _version(definition, 1, V1)
    _version(definition, 2, V2)
    response = api_client.post(
        "/api/v1/instances/",
        {
            "name": "up",
            "strategy": "up",
            "version": 1,
            "account": str(paper_account.pk),
            "market": market.pk,
            "config": {"window": 30, "legacy": True},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return StrategyInstance.objects.get(pk=response.json()["id"])


def _url(instance: Any) -> str:
    return f"/api/v1/instances/{instance.pk}/upgrade/"


def test_upgrade_migrates_config_and_reports_it(api_client: Any, instance: Any) -> None:
    revision = instance.config_revision
    response = api_client.post(_url(instance), {"version": 2}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["report"]["config"] == {
        "kept": {"window": 30, "mode_name": "fast"},
        "added": {"threshold": 0.5},
        "removed": {"legacy": True},
    }
    assert (body["report"]["from_version"], body["report"]["to_version"]) == (1, 2)
    assert body["instance"]["identity"]["version"]["number"] == 2
    instance.refresh_from_db()
    assert instance.version.number == 2 and instance.config_revision == revision + 1
    assert instance.config == {"window": 30, "mode_name": "fast", "threshold": 0.5}
    event = AuditEvent.objects.get(action="instance.upgrade", target_id=str(instance.pk))
    assert event.before["version"] == 1 and event.after["version"] == 2
    assert event.after["report"]["config"]["removed"] == {"legacy": True}


def test_invalid_carried_value_is_a_400_naming_the_field_and_changes_nothing(
    api_client: Any, instance: Any
) -> None:
    api_client.patch(f"/api/v1/instances/{instance.pk}/", {"config": {"window": 100}}, format="json")
    response = api_client.post(_url(instance), {"version": 2}, format="json")
    assert response.status_code == 400
    assert [e["attr"] for e in response.json()["errors"]] == ["config.window"]
    instance.refresh_from_db()
    assert instance.version.number == 1 and instance.config["window"] == 100
    assert not AuditEvent.objects.filter(action="instance.upgrade").exists()
    # The same call can fix it: the patch applies before the new schema checks it.
    fixed = api_client.post(_url(instance), {"version": 2, "config": {"window": 40}}, format="json")
    assert fixed.status_code == 200
    assert fixed.json()["instance"]["config"]["window"] == 40


def test_unknown_version_same_version_and_bad_input(api_client: Any, instance: Any) -> None:
    response = api_client.post(_url(instance), {"version": 9}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "version"
    response = api_client.post(_url(instance), {"version": 1}, format="json")
    assert response.status_code == 409 and response.json()["errors"][0]["code"] == "ALREADY_ON_VERSION"
    response = api_client.post(_url(instance), {"version": 2, "strategy": "other"}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "strategy"
    # PATCH cannot change the version: it names the endpoint that can.
    response = api_client.patch(f"/api/v1/instances/{instance.pk}/", {"version": 2}, format="json")
    assert response.status_code == 400
    assert "upgrade" in response.json()["errors"][0]["detail"]
    instance.refresh_from_db()
    assert instance.version.number == 1


def test_rollback_to_the_previous_version(api_client: Any, instance: Any) -> None:
    assert api_client.post(_url(instance), {"version": 2}, format="json").status_code == 200
    response = api_client.post(_url(instance), {"version": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["report"]["config"]["added"] == {"legacy": False}
    instance.refresh_from_db()
    assert instance.version.number == 1


def test_other_tenant_viewer_and_scope(instance: Any, tenant: Any, user: Any, other_api_client: Any) -> None:
    assert other_api_client.post(_url(instance), {"version": 2}, format="json").status_code == 404
    viewer = client_for(add_member(tenant, role="viewer"), tenant)
    assert viewer.post(_url(instance), {"version": 2}, format="json").status_code == 403
    narrow = client_for(user, tenant, scopes=["instances:control"])
    response = narrow.post(_url(instance), {"version": 2}, format="json")
    assert response.status_code == 403 and "'instances:write'" in response.json()["errors"][0]["detail"]
    instance.refresh_from_db()
    assert instance.version.number == 1


def test_the_database_refuses_a_version_of_another_strategy(instance: Any, tenant: Any) -> None:
    from django.db import IntegrityError, transaction

    other = StrategyDefinition.objects.create(tenant=tenant, key="other", name="Other")
    foreign = _version(other, 1, V1)
    with pytest.raises(IntegrityError), transaction.atomic():
        StrategyInstance.objects.filter(pk=instance.pk).update(version=foreign)


def test_instance_page_upgrades_and_reports(instance: Any, user: Any) -> None:
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    page = browser.get(f"/instances/{instance.pk}/")
    assert 'id="upgrade-form"' in page.content.decode()
    response = browser.post(
        f"/instances/{instance.pk}/upgrade/", {"version": "2", "keep_state": "on"}, follow=True
    )
    text = response.content.decode()
    assert "Now on v2 (was v1)" in text and "threshold=0.5" in text and "Removed fields: legacy" in text
    instance.refresh_from_db()
    assert instance.version.number == 2 and instance.carry_state_revision == instance.config_revision
    refused = browser.post(f"/instances/{instance.pk}/upgrade/", {"version": "7"}, follow=True)
    assert "Upgrade refused" in refused.content.decode() and "has no version 7" in refused.content.decode()
