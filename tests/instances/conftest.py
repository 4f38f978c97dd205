"""Fixtures of the instances suite: strategy definitions with a known CONFIG_SCHEMA, instances."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest

SCHEMA: dict[str, Any] = {
    "window": {"type": "int", "default": 20, "min": 2, "max": 500, "description": "SMA window"},
    "threshold": {"type": "float", "default": 0.5, "min": 0.0, "max": 1.0, "live": True},
    "side": {"type": "choice", "choices": ["long", "short"], "default": "long"},
    "label": {"type": "str", "default": "main", "live": True},
    "enabled": {"type": "bool", "default": True},
}
DEFAULTS = {name: spec["default"] for name, spec in SCHEMA.items()}


def make_definition(tenant: Any, key: str, schemas: list[dict[str, Any]] | None = None) -> Any:
    """A definition (tenant None = catalog) with one version per schema, numbered from 1."""
    from strategies_store.models import StrategyDefinition, StrategyVersion

    definition = StrategyDefinition.objects.create(tenant=tenant, key=key, name=key.title())
    for number, schema in enumerate(schemas if schemas is not None else [SCHEMA], start=1):
        source = f"# {key} v{number}\n"
        StrategyVersion.objects.create(
            definition=definition,
            number=number,
            source=source,
            sha256=hashlib.sha256(source.encode()).hexdigest(),
            config_schema=schema,
        )
    return definition


def errors_by_attr(response: Any) -> dict[str | None, str]:
    """{attr: detail} of a drf-standardized-errors body (the last detail wins per attr)."""
    return {error["attr"]: error["detail"] for error in response.json()["errors"]}


@pytest.fixture
def strategy(tenant: Any) -> Any:
    """The tenant's own strategy `t-sma` with versions 1 (no `enabled` field) and 2 (full schema)."""
    v1 = {k: v for k, v in SCHEMA.items() if k != "enabled"}
    return make_definition(tenant, "t-sma", [v1, SCHEMA])


@pytest.fixture
def catalog_strategy(db: None) -> Any:
    return make_definition(None, "t-catalog-breakout")


@pytest.fixture
def other_strategy(other_tenant: Any) -> Any:
    return make_definition(other_tenant, "t-globex-only")


@pytest.fixture
def create_kwargs(tenant: Any, user: Any, strategy: Any, paper_account: Any, market: Any) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "actor": user,
        "name": "My SMA",
        "strategy_key": strategy.key,
        "account_id": paper_account.id,
        "market_id": market.id,
    }


@pytest.fixture
def instance(create_kwargs: dict[str, Any]) -> Any:
    from stratbox.instances.services import instance_create

    return instance_create(
        **create_kwargs,
        config={"window": 30},
        total_capital=Decimal("1000.00"),
        capital_per_trade=Decimal("100.00"),
        max_position_size=Decimal("500.00"),
    )


@pytest.fixture
def other_instance(other_tenant: Any, other_user: Any, other_paper_account: Any, market: Any) -> Any:
    from stratbox.instances.services import instance_create

    make_definition(other_tenant, "t-sma")  # same key, another tenant: resolution must stay scoped
    return instance_create(
        tenant=other_tenant,
        actor=other_user,
        name="Globex SMA",
        strategy_key="t-sma",
        account_id=other_paper_account.id,
        market_id=market.id,
    )


def snapshot(instance: Any) -> dict[str, Any]:
    """Every column of the row as stored (to assert that nothing changed)."""
    from django.forms.models import model_to_dict

    from stratbox.instances.models import StrategyInstance

    row = StrategyInstance.objects.get(pk=instance.pk)
    return {**model_to_dict(row), "updated_at": row.updated_at, "id": row.id}
