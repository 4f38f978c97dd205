"""Creating instances: strategy resolution, version pinning, account/market checks, config and capital."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stratbox.instances.models import StrategyInstance
from stratbox.instances.services import instance_create
from tenants.errors import ApplicationError
from tenants.models import AuditEvent
from tests.instances.conftest import DEFAULTS, errors_by_attr, make_definition

URL = "/api/v1/instances/"


def body(strategy: Any, paper_account: Any, market: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": "API SMA",
        "strategy": strategy.key,
        "account": str(paper_account.id),
        "market": market.id,
        **extra,
    }


def service_errors(**kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ApplicationError) as excinfo:
        instance_create(**kwargs)
    return dict(excinfo.value.errors)


# --- the happy path -----------------------------------------------------------------------


def test_create_fills_defaults_pins_latest_version_and_audits(
    api_client: Any,
    tenant: Any,
    user: Any,
    strategy: Any,
    paper_account: Any,
    market: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(
            URL, body(strategy, paper_account, market, config={"window": 42}), format="json"
        )
    assert response.status_code == 201, response.content
    data = response.json()
    instance = StrategyInstance.objects.get(pk=data["id"])
    assert instance.tenant == tenant
    assert instance.version.number == 2  # latest
    assert instance.config == {**DEFAULTS, "window": 42}
    assert instance.mode == "off"
    assert instance.config_revision == 1
    assert instance.created_by == user
    assert (instance.total_capital, instance.sizing_method, instance.frequency_seconds) == (
        Decimal("1000.00"),
        "fixed",
        5,
    )
    assert data["identity"]["strategy"]["key"] == "t-sma"
    assert data["identity"]["version"]["number"] == 2
    assert data["identity"]["account"]["id"] == str(paper_account.id)
    assert data["identity"]["market"]["code"] == "SIM:BTC/USDT"
    assert data["config"]["window"] == 42
    assert data["total_capital"] == "1000.00"
    event = AuditEvent.objects.get(action="instance.create", target_id=str(instance.id))
    assert event.tenant == tenant and event.actor == user
    assert event.after["strategy"] == "t-sma" and event.after["version"] == 2
    assert event.after["config"]["window"] == 42
    assert len(callbacks) == 1  # the engine hook, run only after commit


def test_explicit_version_is_pinned(create_kwargs: dict[str, Any]) -> None:
    instance = instance_create(**create_kwargs, version_number=1)
    assert instance.version.number == 1
    assert "enabled" not in instance.config  # v1's schema has no such field


def test_unknown_version_number_names_version(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, version=9), format="json")
    assert response.status_code == 400
    assert errors_by_attr(response) == {"version": "Strategy 't-sma' has no version 9."}
    assert not StrategyInstance.objects.exists()


def test_definition_without_versions_names_version(tenant: Any, create_kwargs: dict[str, Any]) -> None:
    make_definition(tenant, "t-empty", schemas=[])
    errors = service_errors(**{**create_kwargs, "strategy_key": "t-empty"})
    assert list(errors) == ["version"]


def test_catalog_strategy_is_usable_and_own_definition_wins(
    tenant: Any, create_kwargs: dict[str, Any], catalog_strategy: Any
) -> None:
    from_catalog = instance_create(**{**create_kwargs, "strategy_key": catalog_strategy.key})
    assert from_catalog.strategy == catalog_strategy
    own = make_definition(tenant, catalog_strategy.key)
    shadowed = instance_create(**{**create_kwargs, "strategy_key": catalog_strategy.key})
    assert shadowed.strategy == own


@pytest.mark.parametrize("key", ["no-such-strategy", "t-globex-only"])
def test_invalid_strategy_key_message(
    api_client: Any, strategy: Any, other_strategy: Any, paper_account: Any, market: Any, key: str
) -> None:
    # Another tenant's key is exactly as unknown as a key that does not exist.
    response = api_client.post(URL, {**body(strategy, paper_account, market), "strategy": key}, format="json")
    assert response.status_code == 400
    assert errors_by_attr(response) == {"strategy": f"Invalid strategy key: {key}"}
    assert not StrategyInstance.objects.exists()


def test_observe_at_creation_allowed_active_refused(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, mode="observe"), format="json")
    assert response.status_code == 201 and response.json()["mode"] == "observe"
    response = api_client.post(URL, body(strategy, paper_account, market, mode="active"), format="json")
    assert response.status_code == 400
    assert "mode" in errors_by_attr(response)
    assert StrategyInstance.objects.count() == 1


def test_unknown_and_read_only_keys_are_refused(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, capital="9"), format="json")
    assert response.status_code == 400 and errors_by_attr(response) == {"capital": "Unknown field."}
    response = api_client.post(
        URL, body(strategy, paper_account, market, id="00000000-0000-0000-0000-000000000001"), format="json"
    )
    assert response.status_code == 400 and list(errors_by_attr(response)) == ["id"]
    assert not StrategyInstance.objects.exists()


# --- account and market -------------------------------------------------------------------


def test_other_tenants_account_is_refused_without_revealing_it(
    api_client: Any, strategy: Any, paper_account: Any, other_paper_account: Any, market: Any
) -> None:
    foreign = api_client.post(URL, body(strategy, other_paper_account, market), format="json")
    missing = api_client.post(
        URL,
        {**body(strategy, paper_account, market), "account": "00000000-0000-0000-0000-000000000000"},
        format="json",
    )
    assert foreign.status_code == missing.status_code == 400
    # Same answer for "exists elsewhere" and "does not exist": nothing leaks.
    assert errors_by_attr(foreign) == errors_by_attr(missing) == {"account": "Unknown account."}
    assert str(other_paper_account.id) not in foreign.content.decode()
    assert not StrategyInstance.objects.exists()


def test_market_must_exist_and_be_active(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    response = api_client.post(
        URL, {**body(strategy, paper_account, market), "market": 999999}, format="json"
    )
    assert response.status_code == 400 and errors_by_attr(response) == {"market": "Unknown market."}
    market.active = False
    market.save()
    response = api_client.post(URL, body(strategy, paper_account, market), format="json")
    assert response.status_code == 400
    assert errors_by_attr(response) == {"market": "Market SIM:BTC/USDT is not active."}
    assert not StrategyInstance.objects.exists()


# --- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "attr"),
    [
        ({"bogus": 1}, "config.bogus"),  # unknown key
        ({"window": "20"}, "config.window"),  # wrong type
        ({"window": True}, "config.window"),  # a bool is not an int
        ({"threshold": "high"}, "config.threshold"),
        ({"enabled": 1}, "config.enabled"),
        ({"label": 5}, "config.label"),
        ({"window": 1}, "config.window"),  # below min
        ({"window": 501}, "config.window"),  # above max
        ({"threshold": 1.5}, "config.threshold"),
        ({"side": "sideways"}, "config.side"),  # bad choice
    ],
)
def test_config_errors_name_the_field(
    api_client: Any, strategy: Any, paper_account: Any, market: Any, config: dict[str, Any], attr: str
) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, config=config), format="json")
    assert response.status_code == 400, response.content
    assert list(errors_by_attr(response)) == [attr]
    assert not StrategyInstance.objects.exists()


def test_several_config_errors_are_reported_together(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    config = {"window": 0, "side": "up", "nope": True}
    response = api_client.post(URL, body(strategy, paper_account, market, config=config), format="json")
    assert response.status_code == 400
    assert set(errors_by_attr(response)) == {"config.window", "config.side", "config.nope"}


def test_config_must_be_an_object(api_client: Any, strategy: Any, paper_account: Any, market: Any) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, config=[1, 2]), format="json")
    assert response.status_code == 400 and list(errors_by_attr(response)) == ["config"]


def test_int_accepted_for_float_field(create_kwargs: dict[str, Any]) -> None:
    instance = instance_create(**create_kwargs, config={"threshold": 1})
    assert instance.config["threshold"] == 1.0 and isinstance(instance.config["threshold"], float)


# --- capital allocation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "attr"),
    [
        ({"total_capital": "0"}, "total_capital"),
        ({"total_capital": "-5"}, "total_capital"),
        ({"capital_per_trade": "-1"}, "capital_per_trade"),
        ({"capital_per_trade": "1000.01"}, "capital_per_trade"),  # > total_capital (default 1000)
        ({"max_position_size": "2000"}, "max_position_size"),
        ({"max_position_size": "-0.01"}, "max_position_size"),
        ({"max_daily_loss": "-1"}, "max_daily_loss"),
        ({"max_positions": 0}, "max_positions"),
        ({"sizing_method": "martingale"}, "sizing_method"),
        ({"frequency_seconds": 0}, "frequency_seconds"),
        ({"total_capital": "10.001"}, "total_capital"),  # more than 2 decimal places
        ({"total_capital": "abc"}, "total_capital"),
        ({"total_capital": "100000.01"}, "total_capital"),  # over the tenant's capital limit
    ],
)
def test_capital_errors_name_the_field(
    api_client: Any, strategy: Any, paper_account: Any, market: Any, extra: dict[str, Any], attr: str
) -> None:
    response = api_client.post(URL, body(strategy, paper_account, market, **extra), format="json")
    assert response.status_code == 400, response.content
    assert list(errors_by_attr(response)) == [attr]
    assert not StrategyInstance.objects.exists()


def test_capital_fields_roundtrip_as_decimal_strings(
    api_client: Any, strategy: Any, paper_account: Any, market: Any
) -> None:
    extra = {
        "total_capital": "2500.50",
        "capital_per_trade": "250.25",
        "max_positions": 3,
        "max_position_size": "2500.50",
        "max_daily_loss": "0.00",
        "sizing_method": "kelly",
        "frequency_seconds": 60,
    }
    response = api_client.post(URL, body(strategy, paper_account, market, **extra), format="json")
    assert response.status_code == 201, response.content
    assert {k: response.json()[k] for k in extra} == extra
    instance = StrategyInstance.objects.get()
    assert instance.capital_per_trade == Decimal("250.25")


def test_service_refuses_floats_for_money(create_kwargs: dict[str, Any]) -> None:
    errors = service_errors(**create_kwargs, total_capital=1000.5)
    assert list(errors) == ["total_capital"]


def test_viewer_cannot_create(viewer_client: Any, strategy: Any, paper_account: Any, market: Any) -> None:
    response = viewer_client.post(URL, body(strategy, paper_account, market), format="json")
    assert response.status_code == 403
    assert not StrategyInstance.objects.exists()
