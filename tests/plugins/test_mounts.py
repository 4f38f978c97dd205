"""Mounts per instance: the contract's shape accepted unchanged, every fail-closed rule with its text."""

from __future__ import annotations

from typing import Any

import pytest

from stratbox.plugins.models import PluginMount
from tenants.models import AuditEvent
from tests.instances.conftest import errors_by_attr

pytestmark = pytest.mark.django_db


def put(client: Any, instance: Any, doc: Any) -> Any:
    return client.put(f"/api/v1/instances/{instance.pk}/plugins/", doc, format="json")


def test_contract_mount_config_is_accepted_unchanged(api_client: Any, instance: Any) -> None:
    doc = {
        "strategy_plugins": [
            {
                "strategy": "tqqq_growth_income",
                "plugin": "market_regime_control",
                "signal_path": "gs://bucket/tqqq/plugins/market_regime_control/latest_signal.json",
                "enabled": True,
                "expected_mode": "shadow",
                "expected_schema_version": "market_regime_control.v1",
            },
            {"strategy": "tqqq_growth_income", "plugin": "crisis_response_shadow", "signal_path": "/x.json"},
        ]
    }
    r = put(api_client, instance, doc)
    assert r.status_code == 200, r.json()
    assert r.json() == {
        "strategy_plugins": [
            {
                "strategy": "tqqq_growth_income",
                "plugin": "crisis_response_shadow",
                "enabled": True,
            },
            {
                "strategy": "tqqq_growth_income",
                "plugin": "market_regime_control",
                "enabled": True,
                "expected_mode": "shadow",
                "expected_schema_version": "market_regime_control.v1",
            },
        ]
    }
    assert PluginMount.objects.filter(instance=instance).count() == 2
    audit = AuditEvent.objects.filter(action="instance.plugin_mounts", target_id=str(instance.pk)).get()
    assert len(audit.after["strategy_plugins"]) == 2
    # A bare list (the contract accepts one) and the `plugins` fallback key replace the set.
    assert put(api_client, instance, [{"plugin": "macro_risk_governor"}]).status_code == 200
    assert list(
        PluginMount.objects.filter(instance=instance).values_list("definition__plugin", flat=True)
    ) == ["macro_risk_governor"]
    assert put(api_client, instance, {"plugins": []}).status_code == 200
    assert not PluginMount.objects.filter(instance=instance).exists()


REFUSALS = [
    ("not-a-list", "strategy plugin mount config must be a JSON list or object with strategy_plugins"),
    (
        {"strategy_plugins": "x"},
        "strategy plugin mount config must be a JSON list or object with strategy_plugins",
    ),
    (["x"], "each strategy plugin mount must be an object"),
    (
        [{"plugin": "market_regime_control", "mode": "shadow"}],
        "platform plugin mount config must not set mode; read mode from the plugin artifact",
    ),
    (
        [{"plugin": "market_regime_control", "extra": {"mode": "live"}}],
        "platform plugin mount config must not set mode; read mode from the plugin artifact",
    ),
    ([{"strategy": "tqqq_growth_income"}], "plugin is required"),
    (
        [
            {"plugin": "market_regime_control"},
            {"plugin": "market_regime_control", "strategy": "tqqq_growth_income"},
        ],
        "duplicate strategy plugin mount: strategy=tqqq_growth_income plugin=market_regime_control",
    ),
    (
        [{"plugin": "market_regime_control", "expected_mode": "paper"}],
        "expected_mode must be one of shadow; got 'paper'",
    ),
    (
        [{"plugin": "market_regime_control", "expected_mode": "live"}],
        "expected_mode must be one of shadow; got 'live'",
    ),
    (
        [{"plugin": "market_regime_control", "expected_schema_version": "market_regime_control.v9"}],
        "strategy plugin market_regime_control does not support schema_version market_regime_control.v9 in mount; "
        "supported schema versions: market_regime_control.v1",
    ),
    (
        [{"plugin": "tech_communication_pullback_enhancement"}],
        "strategy plugin tech_communication_pullback_enhancement is not a registered plugin; registered plugins: "
        "crisis_response_shadow, macro_risk_governor, market_regime_control, taco_rebound_shadow",
    ),
    (
        [{"plugin": "market_regime_control", "strategy": "soxl_soxx_trend_income"}],
        "strategy plugin mount strategy mismatch: expected tqqq_growth_income, got soxl_soxx_trend_income",
    ),
]


@pytest.mark.parametrize(("doc", "message"), REFUSALS)
def test_every_fail_closed_mount_rule_has_the_contracts_message(
    api_client: Any, instance: Any, doc: Any, message: str
) -> None:
    put(api_client, instance, [{"plugin": "crisis_response_shadow"}])
    r = put(api_client, instance, doc)
    assert r.status_code == 400
    assert errors_by_attr(r) == {"strategy_plugins": message}
    assert r.json()["errors"][0]["code"] == "PLUGIN_CONTRACT"
    # Nothing changed: the previous mount set stands.
    assert list(
        PluginMount.objects.filter(instance=instance).values_list("definition__plugin", flat=True)
    ) == ["crisis_response_shadow"]


def test_unsupported_strategy_is_refused(
    api_client: Any, tenant: Any, user: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.instances.services import instance_create
    from tests.instances.conftest import make_definition

    other = make_definition(tenant, "sma_crossover_t")
    inst = instance_create(
        tenant=tenant,
        actor=user,
        name="x",
        strategy_key=other.key,
        account_id=paper_account.id,
        market_id=market.id,
    )
    r = put(api_client, inst, [{"plugin": "crisis_response_shadow"}])
    assert errors_by_attr(r) == {
        "strategy_plugins": "strategy plugin crisis_response_shadow does not support strategy sma_crossover_t in mount; "
        "supported strategies: tqqq_growth_income"
    }


def test_viewer_and_other_tenant_cannot_mount(
    viewer_client: Any, other_api_client: Any, api_client: Any, instance: Any
) -> None:
    assert put(viewer_client, instance, [{"plugin": "market_regime_control"}]).status_code == 403
    r = put(other_api_client, instance, [{"plugin": "market_regime_control"}])
    assert r.status_code == 404
    assert other_api_client.get(f"/api/v1/instances/{instance.pk}/plugins/").status_code == 404
    assert not PluginMount.objects.exists()


def test_registry_lists_the_contracts_four_plugins(api_client: Any) -> None:
    rows = {d["plugin"]: d for d in api_client.get("/api/v1/plugins/definitions/").json()}
    assert set(rows) == {
        "market_regime_control",
        "crisis_response_shadow",
        "macro_risk_governor",
        "taco_rebound_shadow",
    }
    assert rows["market_regime_control"]["deprecated"] is False
    assert rows["market_regime_control"]["supported_schema_versions"] == ["market_regime_control.v1"]
    assert rows["taco_rebound_shadow"]["supported_schema_versions"] == ["taco_rebound_shadow.v2"]
    for name in ("crisis_response_shadow", "macro_risk_governor", "taco_rebound_shadow"):
        assert rows[name]["deprecated"] is True
        assert rows[name]["successor"] == "market_regime_control"
    for row in rows.values():
        assert row["supported_modes"] == ["shadow"]
        assert row["alert_channels"] == ["email", "sms", "push", "telegram"]
        assert row["max_artifact_age_hours"] == 96
