"""Attach, never act: whatever an artifact carries, no plugin path creates an order or changes an
instance's config, allocation or mode — proven with real ticks in a real sandbox host — and
strategies see signals only as read-only `context.plugin_signals`, only when allowed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.instances.models import StrategyInstance
from stratbox.notifications import services as notify
from stratbox.notifications.models import NotificationEvent
from stratbox.plugins import services as plugins
from stratbox.trading.models import Account, Order, Position
from tenants.models import AuditEvent
from tests.engine.conftest import make_instance, make_version, set_quote
from tests.plugins.conftest import MRC, artifact, body

pytestmark = pytest.mark.django_db

READER = """
from sandbox.sdk import Strategy


class Reader(Strategy):
    CONFIG_SCHEMA = {"window": {"type": "int", "default": 3, "min": 1, "max": 100}}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        signals = self.context.plugin_signals
        if "market_regime_control" in signals:
            signals["market_regime_control"]["canonical_route"] = "tampered"
        again = self.context.plugin_signals
        self.context.log("signals " + str(sorted(again.items())))
"""

# Every field the producer writes (seed 003 reference, section 1.2), each with a hostile value,
# plus keys a hostile pipeline might add hoping something acts on them.
HOSTILE: dict[str, Any] = {
    "canonical_route": "risk_off",
    "suggested_action": "defend",
    "would_trade_if_enabled": True,
    "profile": "live_trading",
    "strategy_policy": "all_in",
    "arbiter": {
        "final_route": "risk_off",
        "suggested_action": "defend",
        "route_source": "crisis",
        "vetoes": ["x"],
    },
    "notification": {"allowed": True, "should_notify": True, "profile": "manual_review_only"},
    "position_control": {
        "allowed": True,
        "mode": "shadow",
        "risk_budget_scalar": 0.0,
        "leverage_scalar": 0.0,
        "risk_asset_scalar": 0.0,
        "crisis_defense_required": True,
        "blocked_actions": ["increase_risk"],
        "defensive_destination_role": "cash_like",
        "auditable_position_control": {"evidence_package_id": "x", "bounded_budget": 0},
    },
    "component_signals": {
        "crisis": {"available": True, "canonical_route": "true_crisis", "kill_switch_active": True}
    },
    "execution_controls": {
        "capital_impact": "strategy_opt_in",
        "broker_order_allowed": True,
        "live_allocation_mutation_allowed": True,
        "repository_broker_write_allowed": True,
        "repository_allocation_mutation_allowed": True,
        "strategy_runtime_metadata_allowed": True,
        "position_control_allowed": True,
        "consumption_evidence_status": "automation_approved",
    },
    "consumption_policy": {"position_control_allowed": True, "evidence_status": "automation_approved"},
    "audit_summary": {"final_route": "risk_off"},
    "localized_messages": {"notification": {"en-US": "SELL EVERYTHING NOW"}},
    "log_record": {"event": "strategy_plugin_signal", "reason_codes": ["crisis:true_crisis"]},
    "ai_audit": {"enabled": True, "status": "ok", "verdict": "sell"},
    "reason_codes": ["crisis:true_crisis"],
    "kill_switch_active": True,
    "leverage_scalar": 0.0,
    "risk_asset_scalar": 0.0,
    "risk_multiplier_suggestion": 0.0,
    "manual_review_required": True,
    # Not in the contract: what an attacker would try.
    "order": {"side": "sell", "qty": 1000, "type": "market"},
    "orders": [{"side": "buy", "qty": 1, "client_order_id": "x"}],
    "intents": [{"kind": "order", "side": "sell", "qty": 5}],
    "target_weight": 0.0,
    "allocation": {"total_capital": "0", "capital_per_trade": "0"},
    "config": {"window": 99},
    "total_capital": "1",
    "capital_per_trade": "1",
    "max_positions": 0,
    "max_daily_loss": "0",
    "frequency_seconds": 999,
    "account": "live",
    "authorization": "granted",
}


def _fingerprint(instance: StrategyInstance) -> dict[str, Any]:
    fresh = StrategyInstance.objects.get(pk=instance.pk)
    account = Account.objects.get(pk=instance.account_id)
    return {
        "config": fresh.config,
        "config_revision": fresh.config_revision,
        "mode": fresh.mode,
        "allocation": [
            str(getattr(fresh, f))
            for f in (
                "total_capital",
                "capital_per_trade",
                "max_positions",
                "max_position_size",
                "max_daily_loss",
            )
        ],
        "sizing": fresh.sizing_method,
        "frequency": fresh.frequency_seconds,
        "version": fresh.version_id,
        "balance": str(account.balance),
        "orders": Order.objects.count(),
        "positions": Position.objects.count(),
    }


def test_no_plugin_path_can_order_or_change_config_for_any_artifact_field(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, smtp_sink: Any
) -> None:
    tenant.capital_limit = Decimal("1000000")
    tenant.save(update_fields=["capital_limit"])
    version = make_version(tenant, READER, key="tqqq_growth_income")
    instance = make_instance(version, paper_account, market, mode="active", config={"window": 3})
    api_client.post(
        "/api/v1/notifications/channels/", {"name": "mail", "url": smtp_sink.url()}, format="json"
    )
    r = api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/", [{"plugin": "market_regime_control"}], format="json"
    )
    assert r.status_code == 200
    set_quote(market)
    reconcile()
    before = _fingerprint(instance)
    audit_before = set(AuditEvent.objects.values_list("action", flat=True))
    slot = int(__import__("time").time()) - 1
    for n, (field, value) in enumerate(sorted(HOSTILE.items())):
        doc = artifact(MRC, **{field: value}, as_of=f"2026-12-{(n % 28) + 1:02d}")
        r = api_client.post(
            f"/api/v1/instances/{instance.pk}/plugins/artifacts/", body(doc), content_type="application/json"
        )
        assert r.status_code == 201, (field, r.json())
        plugins.context_refresh(instance_id=instance.pk)  # what the push's on-commit hook does
        plugins.context._cache["at"] = 0.0  # the tick-path cache of the mounted ids
        for event in NotificationEvent.objects.filter(deliveries__isnull=True):
            notify.event_deliver(event_id=event.pk)
        assert api_client.get(f"/api/v1/instances/{instance.pk}/plugins/status/").status_code == 200
        slot += 1
        outcome = tick_run(instance.pk, slot)
        assert outcome.status == "ok", (field, outcome)
        assert _fingerprint(instance) == before, field
    # Only plugin and notification bookkeeping was audited: nothing about config, mode or orders.
    new_actions = set(AuditEvent.objects.values_list("action", flat=True)) - audit_before
    assert new_actions <= {"notifications.channel.create", "instance.plugin_mounts"}, new_actions
    assert len(smtp_sink.messages) >= 1  # the alerts themselves were delivered


def test_strategy_sees_signals_read_only_and_only_when_allowed(
    api_client: Any, tenant: Any, paper_account: Any, market: Any
) -> None:
    version = make_version(tenant, READER, key="tqqq_growth_income")
    instance = make_instance(version, paper_account, market, mode="observe", config={"window": 3})
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/", [{"plugin": "market_regime_control"}], format="json"
    )
    set_quote(market)
    reconcile()
    slot = int(__import__("time").time()) - 1

    def logged_signals() -> str:
        nonlocal slot
        plugins.context._cache["at"] = 0.0  # the tick-path cache of the mounted ids
        slot += 1
        outcome = tick_run(instance.pk, slot)
        assert outcome.status == "ok", outcome
        return " ".join(line["msg"] for line in outcome.logs)

    assert logged_signals() == "signals []"
    # Not allowed into runtime metadata: the strategy sees nothing.
    denied = artifact(MRC, execution_controls={"strategy_runtime_metadata_allowed": False})
    api_client.post(
        f"/api/v1/instances/{instance.pk}/plugins/artifacts/", body(denied), content_type="application/json"
    )
    plugins.context_refresh(instance_id=instance.pk)
    assert logged_signals() == "signals []"
    # Allowed: machine fields only; the strategy's own change to its copy does not stick.
    api_client.post(
        f"/api/v1/instances/{instance.pk}/plugins/artifacts/",
        body(artifact(MRC)),
        content_type="application/json",
    )
    plugins.context_refresh(instance_id=instance.pk)
    seen = logged_signals()
    assert "'canonical_route': 'risk_reduced'" in seen
    assert "tampered" not in seen
    assert "'reason_codes': ['macro:benchmark_realized_volatility_high']" in seen
    assert "'leverage_scalar': 0.0" in seen  # position_control, as data
    assert "localized_messages" not in seen and "execution_controls" not in seen
    # Past the definition's maximum age the same signal turns blocked with artifact:stale.
    from stratbox.plugins.models import PluginDefinition

    PluginDefinition.objects.filter(plugin="market_regime_control").update(max_artifact_age_hours=0)
    plugins.context_refresh(instance_id=instance.pk)
    import time as _time

    key = plugins.CONTEXT_KEY.format(instance.pk)
    from stratbox.markets.quotes import redis_client

    entries = json.loads(redis_client().get(key))
    entries[0]["max_artifact_age_hours"] = 1
    entries[0]["produced_at"] = _time.time() - 7200
    redis_client().set(key, json.dumps(entries))
    seen = logged_signals()
    assert "'canonical_route': 'blocked'" in seen and "'artifact:stale'" in seen
