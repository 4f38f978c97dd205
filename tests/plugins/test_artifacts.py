"""Artifacts in: pushed with a tenant token, validated exactly per the contract, stored immutably."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.db import DatabaseError, transaction

from stratbox.plugins.models import PluginArtifact
from tests.instances.conftest import errors_by_attr
from tests.plugins.conftest import LEGACY, MRC, TARGET, artifact, body, fresh

pytestmark = pytest.mark.django_db


@pytest.fixture
def mounted(api_client: Any, instance: Any) -> Any:
    r = api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/",
        {"strategy_plugins": [{"plugin": "market_regime_control"}, {"plugin": "crisis_response_shadow"}]},
        format="json",
    )
    assert r.status_code == 200
    return instance


def push(client: Any, instance: Any, raw: bytes) -> Any:
    return client.post(
        f"/api/v1/instances/{instance.pk}/plugins/artifacts/", raw, content_type="application/json"
    )


def test_pushed_artifact_is_stored_byte_for_byte_with_its_sha256(api_client: Any, mounted: Any) -> None:
    raw = body(artifact(MRC))
    r = push(api_client, mounted, raw)
    assert r.status_code == 201, r.json()
    row = PluginArtifact.objects.get(pk=r.json()["id"])
    assert row.raw.encode() == raw
    assert row.sha256 == hashlib.sha256(raw).hexdigest() == r.json()["sha256"]
    assert (row.plugin, row.schema_version, row.canonical_route, row.suggested_action) == (
        "market_regime_control",
        "market_regime_control.v1",
        "risk_reduced",
        "delever",
    )
    assert row.reason_codes == ["macro:benchmark_realized_volatility_high"]
    assert row.escalated is True and row.stale is False and row.runtime_metadata_allowed is True
    # Immutable in the database itself.
    with pytest.raises(DatabaseError, match="plugin artifacts are immutable"), transaction.atomic():
        PluginArtifact.objects.filter(pk=row.pk).update(canonical_route="no_action")


def test_legacy_artifact_of_the_contract_loads(api_client: Any, mounted: Any) -> None:
    r = push(api_client, mounted, body(artifact(LEGACY)))
    assert r.status_code == 201, r.json()
    # as_of 2026-04-17 is far older than 96 hours: stale, so blocked with artifact:stale.
    assert r.json()["stale"] is True
    assert r.json()["canonical_route"] == "blocked"
    assert r.json()["suggested_action"] == "blocked"
    assert r.json()["reason_codes"][0] == "artifact:stale"
    assert r.json()["escalated"] is True


REFUSALS = [
    (b"[1, 2]", "strategy plugin signal must be a JSON object"),
    (
        body(artifact(MRC, target_type="account")),
        "strategy plugin signal target_type must be strategy or notification_target; got 'account'",
    ),
    (body(artifact(MRC, mode="live")), "mode must be one of shadow; got 'live'"),
    (body(artifact(MRC, mode="paper")), "mode must be one of shadow; got 'paper'"),
    (body(artifact(MRC, mode=...)), "mode must be one of shadow; got ''"),
    (
        body(artifact(MRC, configured_mode="advisory")),
        "configured_mode must be one of shadow; got 'advisory'",
    ),
    (body(artifact(MRC, effective_mode="live")), "effective_mode must be one of shadow; got 'live'"),
    (
        body(artifact(MRC, strategy="global_etf_rotation")),
        "strategy plugin artifact strategy mismatch: expected tqqq_growth_income, got global_etf_rotation",
    ),
    (body(artifact(MRC, strategy=...)), "strategy is required"),
    (
        body(artifact(MRC, plugin="taco_rebound_shadow")),
        "strategy plugin taco_rebound_shadow is not mounted on this instance",
    ),
    (
        body(artifact(TARGET)),
        "strategy plugin artifact target mismatch: expected strategy tqqq_growth_income, "
        "got notification target market_regime_notification",
    ),
    (body(artifact(MRC, schema_version=...)), "schema_version is required"),
    (
        body(artifact(MRC, schema_version="crisis_response_shadow.v1")),
        "strategy plugin market_regime_control does not support schema_version crisis_response_shadow.v1 in artifact; "
        "supported schema versions: market_regime_control.v1",
    ),
    (
        body(artifact(MRC, execution_controls=["x"])),
        "strategy plugin signal execution_controls must be an object",
    ),
    (
        body(artifact(MRC, execution_controls="yes")),
        "strategy plugin signal execution_controls must be an object",
    ),
]


@pytest.mark.parametrize(("raw", "message"), REFUSALS)
def test_every_fail_closed_artifact_rule_has_the_contracts_message(
    api_client: Any, mounted: Any, raw: bytes, message: str
) -> None:
    r = push(api_client, mounted, raw)
    assert r.status_code == 400
    assert errors_by_attr(r) == {"artifact": message}
    assert not PluginArtifact.objects.exists()


def test_mount_guards_apply_to_artifacts(api_client: Any, instance: Any) -> None:
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/",
        [{"plugin": "market_regime_control", "expected_schema_version": "market_regime_control.v1"}],
        format="json",
    )
    r = push(api_client, instance, body(artifact(MRC, schema_version=...)))
    assert errors_by_attr(r) == {
        "artifact": "strategy plugin artifact schema_version mismatch: expected market_regime_control.v1, got <missing>"
    }
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/",
        [{"plugin": "market_regime_control", "enabled": False}],
        format="json",
    )
    r = push(api_client, instance, body(artifact(MRC)))
    assert errors_by_attr(r) == {
        "artifact": "strategy plugin market_regime_control is mounted but disabled on this instance"
    }
    assert r.json()["errors"][0]["code"] == "PLUGIN_DISABLED"


def test_registry_is_checked_again_when_artifacts_arrive(api_client: Any, mounted: Any) -> None:
    from stratbox.plugins.models import PluginDefinition

    PluginDefinition.objects.filter(plugin="market_regime_control").update(
        supported_strategies=["global_etf_rotation"]
    )
    r = push(api_client, mounted, body(artifact(MRC)))
    assert errors_by_attr(r) == {
        "artifact": "strategy plugin market_regime_control does not support strategy tqqq_growth_income in artifact; "
        "supported strategies: global_etf_rotation"
    }


def test_invalid_json_is_refused(api_client: Any, mounted: Any) -> None:
    r = push(api_client, mounted, b'{"plugin": ')
    assert r.status_code == 400
    assert not PluginArtifact.objects.exists()


def test_stale_artifact_becomes_blocked_with_artifact_stale(api_client: Any, mounted: Any) -> None:
    r = push(
        api_client,
        mounted,
        body(
            artifact(
                MRC,
                generated_at=fresh(hours_ago=97),
                canonical_route="no_action",
                suggested_action="no_action",
                would_trade_if_enabled=False,
            )
        ),
    )
    assert r.status_code == 201
    data = r.json()
    assert (data["stale"], data["canonical_route"], data["suggested_action"]) == (True, "blocked", "blocked")
    assert data["reason_codes"] == ["artifact:stale", "macro:benchmark_realized_volatility_high"]
    assert data["escalated"] is True
    # The same artifact, fresh and quiet: not stale and no escalation.
    r = push(
        api_client,
        mounted,
        body(
            artifact(
                MRC,
                generated_at=fresh(hours_ago=95),
                canonical_route="no_action",
                suggested_action="no_action",
                would_trade_if_enabled=False,
            )
        ),
    )
    assert (r.json()["stale"], r.json()["canonical_route"], r.json()["escalated"]) == (
        False,
        "no_action",
        False,
    )
    # An artifact with no date at all cannot be shown fresh: stale.
    r = push(api_client, mounted, body(artifact(MRC, generated_at=..., as_of=...)))
    assert r.json()["stale"] is True


def test_notification_target_artifacts(api_client: Any, tenant: Any) -> None:
    r = api_client.put(
        "/api/v1/plugins/targets/",
        {
            "notification_targets": [
                {"notification_target": "market_regime_notification", "plugin": "market_regime_control"}
            ]
        },
        format="json",
    )
    assert r.status_code == 200, r.json()
    r = api_client.post("/api/v1/plugins/artifacts/", body(artifact(TARGET)), content_type="application/json")
    assert r.status_code == 201, r.json()
    assert r.json()["instance_id"] is None
    assert r.json()["target_type"] == "notification_target"
    assert r.json()["runtime_metadata_allowed"] is False
    # A target the definition does not support, and mode in the target config, are refused.
    r = api_client.put(
        "/api/v1/plugins/targets/",
        [{"notification_target": "soxl_notification", "plugin": "market_regime_control"}],
        format="json",
    )
    assert errors_by_attr(r) == {
        "notification_targets": "strategy plugin market_regime_control does not support notification target "
        "soxl_notification in notification target; supported notification targets: market_regime_notification"
    }
    r = api_client.put(
        "/api/v1/plugins/targets/",
        [
            {
                "notification_target": "market_regime_notification",
                "plugin": "market_regime_control",
                "mode": "shadow",
            }
        ],
        format="json",
    )
    assert errors_by_attr(r) == {
        "notification_targets": "notification target config must not set mode; read mode from the plugin artifact"
    }
    # Even with runtime metadata claimed, a target artifact is never runtime metadata.
    r = api_client.post(
        "/api/v1/plugins/artifacts/",
        body(artifact(TARGET, execution_controls={"strategy_runtime_metadata_allowed": True})),
        content_type="application/json",
    )
    assert r.json()["runtime_metadata_allowed"] is False


def test_other_tenant_cannot_push_or_read(api_client: Any, other_api_client: Any, mounted: Any) -> None:
    r = push(api_client, mounted, body(artifact(MRC)))
    artifact_id = r.json()["id"]
    assert push(other_api_client, mounted, body(artifact(MRC))).status_code == 404
    assert other_api_client.get(f"/api/v1/plugins/artifacts/{artifact_id}/").status_code == 404
    assert other_api_client.get("/api/v1/plugins/artifacts/").json()["results"] == []
    assert other_api_client.get(f"/api/v1/instances/{mounted.pk}/plugins/status/").status_code == 404
    assert (
        api_client.get(f"/api/v1/plugins/artifacts/{artifact_id}/").json()["payload"]["plugin"]
        == "market_regime_control"
    )
    assert PluginArtifact.objects.count() == 1


def test_a_pipeline_that_stops_turns_its_signal_stale_and_alerts_once(api_client: Any, mounted: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from stratbox.notifications.models import NotificationEvent
    from stratbox.plugins.services import stale_sweep

    quiet = artifact(
        MRC, canonical_route="no_action", suggested_action="no_action", would_trade_if_enabled=False
    )
    assert push(api_client, mounted, body(quiet)).json()["escalated"] is False
    assert stale_sweep() == 0  # fresh
    later = timezone.now() + timedelta(hours=97)
    assert stale_sweep(now=later) == 1
    (event,) = NotificationEvent.objects.filter(event_type="plugin_alert")
    assert (
        event.payload["canonical_route"] == "blocked" and event.payload["reason_codes"][0] == "artifact:stale"
    )
    assert "treated as blocked" in event.body
    assert stale_sweep(now=later) == 0  # once
    status = api_client.get(f"/api/v1/instances/{mounted.pk}/plugins/status/").json()
    assert {s["plugin"]: s["status"] for s in status}["market_regime_control"] == "ok"  # still fresh now


def test_run_report_has_the_plugin_section_as_of_the_run(api_client: Any, mounted: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from stratbox.engine.models import Run

    def run_at(moment: Any) -> int:
        return Run.objects.create(
            tenant=mounted.tenant,
            instance=mounted,
            trigger="manual",
            status="ok",
            started_at=moment,
            finished_at=moment,
            version=mounted.version,
        ).pk

    before = run_at(timezone.now() - timedelta(minutes=5))
    push(api_client, mounted, body(artifact(MRC)))
    after = run_at(timezone.now() + timedelta(seconds=1))
    report = {p["plugin"]: p for p in api_client.get(f"/api/v1/runs/{after}/").json()["plugins"]}
    mrc = report["market_regime_control"]
    assert (mrc["status"], mrc["schema_version"], mrc["canonical_route"], mrc["suggested_action"]) == (
        "ok",
        "market_regime_control.v1",
        "risk_reduced",
        "delever",
    )
    assert mrc["reason_codes"] == ["macro:benchmark_realized_volatility_high"]
    assert mrc["position_control"]["leverage_scalar"] == 0.0
    assert report["crisis_response_shadow"] == {"plugin": "crisis_response_shadow", "status": "no_artifact"}
    # A run from before the mounts existed has no plugin section.
    assert api_client.get(f"/api/v1/runs/{before}/").json()["plugins"] == []
