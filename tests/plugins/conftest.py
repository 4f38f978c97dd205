"""Fixtures of the plugins suite: an instance of a strategy the registry supports, artifacts."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.instances.conftest import make_definition
from tests.loopback import http_sink, smtp_sink  # noqa: F401 - fixtures

STRATEGY_KEY = "tqqq_growth_income"


@pytest.fixture(autouse=True)
def _credentials_key(settings: Any) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


@pytest.fixture
def tqqq(tenant: Any) -> Any:
    return make_definition(tenant, STRATEGY_KEY)


@pytest.fixture
def instance(tenant: Any, user: Any, tqqq: Any, paper_account: Any, market: Any) -> Any:
    from stratbox.instances.services import instance_create

    return instance_create(
        tenant=tenant,
        actor=user,
        name="TQQQ income",
        strategy_key=tqqq.key,
        account_id=paper_account.id,
        market_id=market.id,
        config={"window": 30},
        total_capital=Decimal("1000.00"),
    )


LEGACY = {
    "as_of": "2026-04-17",
    "strategy": STRATEGY_KEY,
    "plugin": "crisis_response_shadow",
    "mode": "shadow",
    "configured_mode": "shadow",
    "effective_mode": "shadow",
    "schema_version": "crisis_response_shadow.v1",
    "canonical_route": "no_action",
    "suggested_action": "watch_only",
    "would_trade_if_enabled": False,
    "execution_controls": {
        "broker_order_allowed": False,
        "live_allocation_mutation_allowed": False,
        "repository_broker_write_allowed": False,
        "repository_allocation_mutation_allowed": False,
        "strategy_runtime_metadata_allowed": False,
    },
}

MRC = {
    "target_type": "strategy",
    "strategy": STRATEGY_KEY,
    "plugin": "market_regime_control",
    "profile": "market_regime_control",
    "mode": "shadow",
    "configured_mode": "shadow",
    "effective_mode": "shadow",
    "schema_version": "market_regime_control.v1",
    "as_of": "2026-12-04",
    "generated_at": "FRESH",
    "strategy_policy": "levered_growth_income_v1",
    "canonical_route": "risk_reduced",
    "suggested_action": "delever",
    "would_trade_if_enabled": True,
    "arbiter": {
        "schema_version": "market_regime_arbiter.v1",
        "final_route": "risk_reduced",
        "route_source": "macro",
        "vetoes": [],
        "reason_codes": ["macro:benchmark_realized_volatility_high"],
    },
    "notification": {
        "allowed": True,
        "profile": "shadow_only",
        "should_notify": True,
        "reason_codes": ["macro:benchmark_realized_volatility_high"],
        "localized_messages": {
            "en-US": "Reduce risk: volatility is high.",
            "zh-CN": "降低风险：波动率偏高。",
        },
    },
    "position_control": {
        "mode": "shadow",
        "risk_budget_scalar": 1.0,
        "leverage_scalar": 0.0,
        "risk_asset_scalar": 1.0,
        "blocked_actions": ["increase_leverage"],
        "reason_codes": ["macro:benchmark_realized_volatility_high"],
    },
    "execution_controls": {
        "capital_impact": "strategy_opt_in",
        "broker_order_allowed": False,
        "strategy_runtime_metadata_allowed": True,
        "position_control_allowed": True,
        "consumption_evidence_status": "automation_approved",
    },
    "localized_messages": {
        "schema_version": "strategy_plugin_messages.v1",
        "default_locale": "en-US",
        "notification": {
            "en-US": "Market regime: risk reduced; review leverage.",
            "zh-CN": "市场状态：风险降低；请复核杠杆。",
        },
        "log": {
            "en-US": "market_regime_control route=risk_reduced",
            "zh-CN": "市场状态插件 路线=risk_reduced",
        },
    },
    "log_record": {
        "schema_version": "strategy_plugin_log.v1",
        "event": "strategy_plugin_signal",
        "reason_codes": ["macro:benchmark_realized_volatility_high"],
    },
}

TARGET = {
    "target_type": "notification_target",
    "notification_target": "market_regime_notification",
    "plugin": "market_regime_control",
    "mode": "shadow",
    "schema_version": "market_regime_control.v1",
    "as_of": "2026-12-04",
    "generated_at": "FRESH",
    "canonical_route": "watch",
    "suggested_action": "watch_only",
    "execution_controls": {
        "capital_impact": "notification_only",
        "strategy_runtime_metadata_allowed": False,
        "position_control_allowed": False,
    },
}


def fresh(hours_ago: float = 1.0) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat().replace("+00:00", "Z")


def artifact(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of `base` with `changes` (a value of `...` removes the key); FRESH = an hour ago."""
    out = copy.deepcopy(base)
    if out.get("generated_at") == "FRESH":
        out["generated_at"] = fresh()
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def body(value: Any) -> bytes:
    return json.dumps(value).encode()
