"""The strategies API: listing with the catalog, detail, PATCH, DELETE, viewer and cross-tenant rules."""

from __future__ import annotations

from typing import Any

import pytest

from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import AuditEvent
from tests.strategies_store.conftest import TICK_OK, TICK_OK_V2, tick_payload
from tests.strategies_store.helpers import STRATEGIES_URL, strategy_url, upload_error, versions_url

pytestmark = pytest.mark.django_db


def _keys(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.json()
    return [s["key"] for s in resp.json()["results"]]


def test_list_own_and_catalog_with_filters(
    api_client: Any, tick_strategy: Any, bundle_strategy: Any, catalog_strategy: Any
) -> None:
    assert _keys(api_client.get(STRATEGIES_URL)) == ["momentum", "signals", "test-signals", "test-sma"]
    assert _keys(api_client.get(STRATEGIES_URL, {"builtin": "true"})) == ["test-signals", "test-sma"]
    assert _keys(api_client.get(STRATEGIES_URL, {"builtin": "false"})) == ["momentum", "signals"]
    assert _keys(api_client.get(STRATEGIES_URL, {"style": "tick"})) == ["momentum", "test-sma"]
    assert _keys(api_client.get(STRATEGIES_URL, {"style": "signal_bundle", "builtin": "false"})) == [
        "signals"
    ]
    item = api_client.get(STRATEGIES_URL, {"builtin": "true", "style": "tick"}).json()["results"][0]
    assert item["builtin"] is True and item["version_count"] == 1 and item["latest_version"]["number"] == 1


def test_list_filter_bad_values(api_client: Any) -> None:
    upload_error(api_client.get(STRATEGIES_URL, {"builtin": "maybe"}), attr="builtin")
    upload_error(api_client.get(STRATEGIES_URL, {"style": "quantum"}), attr="style")


def test_list_is_paginated(api_client: Any, tick_strategy: Any, bundle_strategy: Any) -> None:
    body = api_client.get(STRATEGIES_URL, {"limit": 1}).json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]


def test_detail(api_client: Any, tick_strategy: Any) -> None:
    body = api_client.get(strategy_url(tick_strategy.id)).json()
    assert body["id"] == str(tick_strategy.id) and body["key"] == "momentum"
    assert body["latest_version"]["config_schema"]["window"]["default"] == 20


def test_malformed_id_is_a_json_404(api_client: Any) -> None:
    resp = api_client.get(strategy_url("not-a-uuid"))
    assert resp.status_code == 404 and resp.json()["type"] == "client_error"


def test_patch_name_description_thesis(api_client: Any, tick_strategy: Any) -> None:
    resp = api_client.patch(
        strategy_url(tick_strategy.id), {"name": "Renamed", "thesis": "Trends persist."}, format="json"
    )
    assert resp.status_code == 200, resp.json()
    tick_strategy.refresh_from_db()
    assert (tick_strategy.name, tick_strategy.thesis) == ("Renamed", "Trends persist.")
    event = AuditEvent.objects.get(action="strategy.update")
    assert event.before == {"name": "Momentum", "thesis": ""}
    assert event.after == {"name": "Renamed", "thesis": "Trends persist."}


@pytest.mark.parametrize("field", ["key", "style", "source", "tenant"])
def test_patch_refuses_other_fields(api_client: Any, tick_strategy: Any, field: str) -> None:
    resp = api_client.patch(strategy_url(tick_strategy.id), {field: "x", "name": "New"}, format="json")
    err = upload_error(resp, attr=field, code="read_only")
    assert "cannot be changed" in err["detail"]
    tick_strategy.refresh_from_db()
    assert tick_strategy.name == "Momentum" and tick_strategy.key == "momentum"


def test_patch_bundle_thesis_cannot_be_emptied(api_client: Any, bundle_strategy: Any) -> None:
    resp = api_client.patch(strategy_url(bundle_strategy.id), {"thesis": "  "}, format="json")
    upload_error(resp, attr="thesis", code="REQUIRED")
    bundle_strategy.refresh_from_db()
    assert bundle_strategy.thesis


def test_delete_unused(api_client: Any, tick_strategy: Any) -> None:
    resp = api_client.delete(strategy_url(tick_strategy.id))
    assert resp.status_code == 204
    assert not StrategyDefinition.objects.filter(pk=tick_strategy.pk).exists()
    assert not StrategyVersion.objects.exists()
    assert AuditEvent.objects.filter(action="strategy.delete", target_id=str(tick_strategy.pk)).exists()


def test_delete_in_use_is_409(
    api_client: Any, tick_version: Any, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.instances.models import StrategyInstance

    StrategyInstance.objects.create(
        tenant=tenant,
        name="live one",
        strategy=tick_version.definition,
        version=tick_version,
        account=paper_account,
        market=market,
    )
    resp = api_client.delete(strategy_url(tick_version.definition_id))
    assert resp.status_code == 409
    [err] = resp.json()["errors"]
    assert err["code"] == "STRATEGY_IN_USE" and "1 instance" in err["detail"]
    assert StrategyDefinition.objects.filter(pk=tick_version.definition_id).exists()
    assert StrategyVersion.objects.filter(pk=tick_version.pk).exists()


# --- the catalog is read-only for tenants ----------------------------------------------------------


def test_catalog_is_readable_but_not_writable(api_client: Any, catalog_strategy: Any) -> None:
    assert api_client.get(strategy_url(catalog_strategy.id)).json()["builtin"] is True
    assert api_client.get(f"{versions_url(catalog_strategy.id)}1/").status_code == 200
    assert api_client.get(f"{versions_url(catalog_strategy.id)}1/diff/").status_code == 200
    before = (catalog_strategy.name, catalog_strategy.versions.count())
    attempts = [
        api_client.patch(strategy_url(catalog_strategy.id), {"name": "Mine now"}, format="json"),
        api_client.delete(strategy_url(catalog_strategy.id)),
        api_client.post(versions_url(catalog_strategy.id), {"source": TICK_OK_V2}, format="json"),
    ]
    for resp in attempts:
        assert resp.status_code == 403, resp.json()
        assert resp.json()["errors"][0]["code"] == "CATALOG_READ_ONLY"
    catalog_strategy.refresh_from_db()
    assert (catalog_strategy.name, catalog_strategy.versions.count()) == before


def test_own_key_may_shadow_a_catalog_key(api_client: Any, catalog_strategy: Any, tenant: Any) -> None:
    from strategies_store.selectors import strategy_get_by_key

    assert strategy_get_by_key(tenant=tenant, key="test-sma") == catalog_strategy
    resp = api_client.post(STRATEGIES_URL, tick_payload(key="test-sma"), format="json")
    assert resp.status_code == 201
    own = strategy_get_by_key(tenant=tenant, key="test-sma")
    assert own is not None and own.tenant_id == tenant.id


# --- viewers ------------------------------------------------------------------------------------------


def test_viewer_reads_but_cannot_write(viewer_client: Any, tick_strategy: Any) -> None:
    assert _keys(viewer_client.get(STRATEGIES_URL)) == ["momentum"]
    assert viewer_client.get(strategy_url(tick_strategy.id)).status_code == 200
    assert viewer_client.get(versions_url(tick_strategy.id)).status_code == 200
    assert viewer_client.get(f"{versions_url(tick_strategy.id)}1/diff/").status_code == 200
    writes = [
        viewer_client.post(STRATEGIES_URL, tick_payload(key="viewer-made"), format="json"),
        viewer_client.post(versions_url(tick_strategy.id), {"source": TICK_OK_V2}, format="json"),
        viewer_client.patch(strategy_url(tick_strategy.id), {"name": "x"}, format="json"),
        viewer_client.delete(strategy_url(tick_strategy.id)),
    ]
    assert [r.status_code for r in writes] == [403, 403, 403, 403]
    tick_strategy.refresh_from_db()
    assert tick_strategy.name == "Momentum"
    assert StrategyDefinition.objects.count() == 1 and StrategyVersion.objects.count() == 1


def test_anonymous_is_refused(client: Any, tick_strategy: Any) -> None:
    assert client.get(STRATEGIES_URL).status_code in (401, 403)
    assert client.get("/api/v1/sandbox/allowed-imports/").status_code in (401, 403)


# --- another tenant -----------------------------------------------------------------------------------


def test_other_tenant_matrix(other_api_client: Any, tick_strategy: Any, catalog_strategy: Any) -> None:
    sid = tick_strategy.id
    snapshot = (tick_strategy.name, tick_strategy.description, tick_strategy.thesis)
    listed = _keys(other_api_client.get(STRATEGIES_URL))
    assert "momentum" not in listed and "test-sma" in listed
    assert _keys(other_api_client.get(STRATEGIES_URL, {"builtin": "false"})) == []
    attempts = {
        "detail": other_api_client.get(strategy_url(sid)),
        "patch": other_api_client.patch(strategy_url(sid), {"name": "pwned"}, format="json"),
        "delete": other_api_client.delete(strategy_url(sid)),
        "versions": other_api_client.get(versions_url(sid)),
        "upload": other_api_client.post(versions_url(sid), {"source": TICK_OK_V2}, format="json"),
        "version": other_api_client.get(f"{versions_url(sid)}1/"),
        "diff": other_api_client.get(f"{versions_url(sid)}1/diff/"),
    }
    for name, resp in attempts.items():
        assert resp.status_code == 404, (name, resp.status_code)
        assert "momentum" not in resp.content.decode() and TICK_OK[:30] not in resp.content.decode(), name
    tick_strategy.refresh_from_db()
    assert (tick_strategy.name, tick_strategy.description, tick_strategy.thesis) == snapshot
    assert tick_strategy.versions.count() == 1


def test_other_tenant_may_use_the_same_key(other_api_client: Any, tick_strategy: Any) -> None:
    resp = other_api_client.post(STRATEGIES_URL, tick_payload(key=tick_strategy.key), format="json")
    assert resp.status_code == 201
    assert StrategyDefinition.objects.filter(key=tick_strategy.key).count() == 2


def test_selectors_scope_by_tenant(tick_strategy: Any, other_tenant: Any, tenant: Any) -> None:
    from strategies_store.selectors import strategy_get, strategy_get_by_key, strategy_list, version_get_by_id

    assert strategy_get(tenant=other_tenant, strategy_id=tick_strategy.id) is None
    assert strategy_get(tenant=tenant, strategy_id=tick_strategy.id) == tick_strategy
    assert strategy_get_by_key(tenant=other_tenant, key="momentum") is None
    assert not strategy_list(tenant=other_tenant).filter(pk=tick_strategy.pk).exists()
    version = tick_strategy.versions.get()
    assert version_get_by_id(tenant=other_tenant, version_id=version.id) is None
    assert version_get_by_id(tenant=tenant, version_id=version.id) == version


# --- the allow-list for authors -----------------------------------------------------------------------


def test_allowed_imports(api_client: Any, viewer_client: Any) -> None:
    from sandbox.policy import ALLOWED_IMPORTS

    resp = api_client.get("/api/v1/sandbox/allowed-imports/")
    assert resp.status_code == 200
    body = resp.json()
    modules = {m["module"]: m for m in body["modules"]}
    assert set(modules) == set(ALLOWED_IMPORTS)
    assert {"math", "statistics", "collections", "random"} <= set(modules)
    assert "os" not in modules and "sys" not in modules
    assert "mean" in modules["statistics"]["names"] and "seeded" in modules["random"]["note"]
    assert body["max_source_bytes"] == 256 * 1024
    assert viewer_client.get("/api/v1/sandbox/allowed-imports/").status_code == 200
