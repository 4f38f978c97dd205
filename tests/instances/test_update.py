"""Updating instances: identity immutability, config merge/replace, capital, config_revision, audit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction

from stratbox.instances.models import StrategyInstance
from stratbox.instances.services import instance_update_config
from tenants.models import AuditEvent
from tests.instances.conftest import DEFAULTS, errors_by_attr, make_definition, snapshot


def url(instance: Any) -> str:
    return f"/api/v1/instances/{instance.id}/"


def full_body(instance: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": instance.name,
        "config": dict(instance.config),
        "total_capital": str(instance.total_capital),
        "capital_per_trade": str(instance.capital_per_trade),
        "max_positions": instance.max_positions,
        "max_position_size": str(instance.max_position_size),
        "max_daily_loss": str(instance.max_daily_loss),
        "sizing_method": instance.sizing_method,
        "frequency_seconds": instance.frequency_seconds,
        **extra,
    }


# --- identity -----------------------------------------------------------------------------


@pytest.fixture
def identity_values(tenant: Any, instance: Any, market: Any, catalog_strategy: Any) -> dict[str, Any]:
    """A *different*, valid value for every identity field."""
    from stratbox.markets.models import Market
    from stratbox.trading.models import Account

    other_market = Market.objects.create(venue="SIM", symbol="ETH/USDT")
    second_account = Account.objects.create(tenant=tenant, name="Paper 2", kind="paper")
    return {
        "id": "00000000-0000-0000-0000-000000000042",
        "strategy": catalog_strategy.key,
        "version": 1,
        "account": str(second_account.id),
        "market": other_market.id,
    }


@pytest.mark.parametrize("method", ["patch", "put"])
@pytest.mark.parametrize("field", ["id", "strategy", "version", "account", "market"])
def test_identity_and_version_cannot_change_here(
    api_client: Any, instance: Any, identity_values: dict[str, Any], method: str, field: str
) -> None:
    before = snapshot(instance)
    events = AuditEvent.objects.count()
    payload = full_body(instance, **{field: identity_values[field], "name": "renamed"})
    if method == "patch":
        payload = {field: identity_values[field], "name": "renamed"}
    response = getattr(api_client, method)(url(instance), payload, format="json")
    assert response.status_code == 400
    expected = (
        "Change the version with POST /api/v1/instances/{id}/upgrade/."  # deployment state, not identity
        if field == "version"
        else f"Identity field '{field}' cannot be changed."
    )
    assert errors_by_attr(response) == {field: expected}
    assert snapshot(instance) == before  # the name did not change either
    assert AuditEvent.objects.count() == events


def test_identity_block_and_read_only_fields_are_refused(api_client: Any, instance: Any) -> None:
    before = snapshot(instance)
    for key, value in {"identity": {}, "mode": "active", "config_revision": 7, "tenant": "x"}.items():
        response = api_client.patch(url(instance), {key: value}, format="json")
        assert response.status_code == 400
        assert list(errors_by_attr(response)) == [key]
    response = api_client.patch(url(instance), {"windw": 3}, format="json")
    assert response.status_code == 400 and errors_by_attr(response) == {"windw": "Unknown field."}
    assert snapshot(instance) == before


@pytest.mark.parametrize(
    ("column", "value_factory"),
    [
        ("market_id", lambda ctx: ctx["market"].id),
        ("account_id", lambda ctx: ctx["account"].id),
        ("strategy_id", lambda ctx: ctx["strategy"].id),
        ("version_id", lambda ctx: ctx["version"].id),
    ],
)
def test_database_refuses_identity_change(
    tenant: Any, instance: Any, column: str, value_factory: Any
) -> None:
    """Even code that bypasses the services (shell, admin, a bug) cannot rewrite identity."""
    from stratbox.markets.models import Market
    from stratbox.trading.models import Account

    other = make_definition(tenant, "t-other")
    ctx = {
        "market": Market.objects.create(venue="SIM", symbol="DOGE/USDT"),
        "account": Account.objects.create(tenant=tenant, name="Paper 3"),
        "strategy": other,
        "version": other.versions.get(),
    }
    with pytest.raises(IntegrityError, match="cannot be changed"), transaction.atomic():
        StrategyInstance.objects.filter(pk=instance.pk).update(**{column: value_factory(ctx)})
    instance.refresh_from_db()
    assert instance.market.symbol == "BTC/USDT" and instance.strategy.key == "t-sma"


# --- config -------------------------------------------------------------------------------


def test_patch_merges_config_and_bumps_revision_for_non_live_field(
    api_client: Any, user: Any, instance: Any, django_capture_on_commit_callbacks: Any
) -> None:
    assert instance.config["window"] == 30
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.patch(url(instance), {"config": {"side": "short"}}, format="json")
    assert response.status_code == 200, response.content
    instance.refresh_from_db()
    assert instance.config == {**DEFAULTS, "window": 30, "side": "short"}  # window kept
    assert instance.config_revision == 2
    assert response.json()["config_revision"] == 2
    event = AuditEvent.objects.get(action="instance.config", target_id=str(instance.id))
    assert event.actor == user
    assert event.before == {"config": {**DEFAULTS, "window": 30}, "config_revision": 1}
    assert event.after == {"config": instance.config, "config_revision": 2}
    assert len(callbacks) == 1


def test_live_only_config_change_does_not_bump_revision(api_client: Any, instance: Any) -> None:
    response = api_client.patch(url(instance), {"config": {"threshold": 0.9, "label": "x"}}, format="json")
    assert response.status_code == 200
    instance.refresh_from_db()
    assert instance.config["threshold"] == 0.9 and instance.config["label"] == "x"
    assert instance.config_revision == 1
    event = AuditEvent.objects.get(action="instance.config")
    assert event.before == {"config": {**DEFAULTS, "window": 30}}


def test_null_resets_a_config_field_to_its_default(api_client: Any, instance: Any) -> None:
    response = api_client.patch(url(instance), {"config": {"window": None}}, format="json")
    assert response.status_code == 200
    instance.refresh_from_db()
    assert instance.config["window"] == DEFAULTS["window"]
    assert instance.config_revision == 2


def test_put_replaces_config_omitted_fields_take_defaults(api_client: Any, instance: Any) -> None:
    response = api_client.put(url(instance), full_body(instance, config={"side": "short"}), format="json")
    assert response.status_code == 200, response.content
    instance.refresh_from_db()
    assert instance.config == {**DEFAULTS, "side": "short"}  # window back to 20


def test_put_requires_every_mutable_field(api_client: Any, instance: Any) -> None:
    before = snapshot(instance)
    body = full_body(instance)
    del body["frequency_seconds"]
    response = api_client.put(url(instance), body, format="json")
    assert response.status_code == 400 and list(errors_by_attr(response)) == ["frequency_seconds"]
    assert snapshot(instance) == before


@pytest.mark.parametrize(
    ("config", "attr"),
    [
        ({"bogus": 1}, "config.bogus"),
        ({"bogus": None}, "config.bogus"),
        ({"window": 2.5}, "config.window"),
        ({"window": 9999}, "config.window"),
        ({"side": "flat"}, "config.side"),
        ({"enabled": "yes"}, "config.enabled"),
        ({"label": "a\x00b"}, "config.label"),  # jsonb cannot store NUL: refused, never a 500
    ],
)
def test_invalid_config_update_changes_nothing(
    api_client: Any, instance: Any, config: dict[str, Any], attr: str
) -> None:
    before = snapshot(instance)
    response = api_client.patch(url(instance), {"config": config, "name": "renamed"}, format="json")
    assert response.status_code == 400
    assert list(errors_by_attr(response)) == [attr]
    assert snapshot(instance) == before
    assert not AuditEvent.objects.filter(action="instance.config").exists()


# --- capital, frequency, name -------------------------------------------------------------


def test_capital_and_frequency_change_without_reload(api_client: Any, instance: Any) -> None:
    payload = {
        "total_capital": "5000.00",
        "capital_per_trade": "400.00",
        "frequency_seconds": 30,
        "name": "New",
    }
    response = api_client.patch(url(instance), payload, format="json")
    assert response.status_code == 200, response.content
    instance.refresh_from_db()
    assert instance.total_capital == Decimal("5000.00")
    assert instance.capital_per_trade == Decimal("400.00")
    assert (instance.frequency_seconds, instance.name, instance.config_revision) == (30, "New", 1)
    event = AuditEvent.objects.get(action="instance.config")
    assert event.before == {
        "name": "My SMA",
        "total_capital": "1000.00",
        "capital_per_trade": "100.00",
        "frequency_seconds": 5,
    }
    assert event.after["total_capital"] == "5000.00" and event.after["frequency_seconds"] == 30


@pytest.mark.parametrize(
    ("payload", "attr"),
    [
        ({"total_capital": "0"}, "total_capital"),
        ({"total_capital": "99.99"}, "total_capital"),  # below the existing capital_per_trade (100)
        ({"capital_per_trade": "1000.01"}, "capital_per_trade"),
        ({"max_position_size": "1000.01"}, "max_position_size"),
        ({"max_daily_loss": "-1"}, "max_daily_loss"),
        ({"max_positions": 0}, "max_positions"),
        ({"sizing_method": "yolo"}, "sizing_method"),
        ({"frequency_seconds": 0}, "frequency_seconds"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_capital_update_changes_nothing(
    api_client: Any, instance: Any, payload: dict[str, Any], attr: str
) -> None:
    before = snapshot(instance)
    response = api_client.patch(url(instance), payload, format="json")
    assert response.status_code == 400, response.content
    assert list(errors_by_attr(response)) == [attr]
    assert snapshot(instance) == before


def test_noop_update_writes_nothing(
    api_client: Any, instance: Any, django_capture_on_commit_callbacks: Any
) -> None:
    before = snapshot(instance)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.patch(
            url(instance), {"config": {"window": 30}, "total_capital": "1000"}, format="json"
        )
    assert response.status_code == 200
    assert snapshot(instance) == before
    assert not AuditEvent.objects.filter(action="instance.config").exists()
    assert callbacks == []


def test_service_has_no_identity_parameter(instance: Any, user: Any) -> None:
    with pytest.raises(TypeError):
        instance_update_config(instance=instance, actor=user, market_id=1)  # type: ignore[call-arg]


def test_viewer_cannot_update(viewer_client: Any, instance: Any) -> None:
    before = snapshot(instance)
    for method in ("patch", "put"):
        response = getattr(viewer_client, method)(url(instance), full_body(instance, name="x"), format="json")
        assert response.status_code == 403
    assert snapshot(instance) == before
