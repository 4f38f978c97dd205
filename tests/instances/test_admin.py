"""The Django admin: identity read-only; edits go through the services (validated, audited)."""

from __future__ import annotations

from typing import Any

import pytest

from stratbox.instances.models import StrategyInstance
from tenants.models import AuditEvent
from tests.factories import make_user


@pytest.fixture
def staff_client(client: Any, db: None) -> Any:
    client.force_login(make_user("staff@stratbox.test", is_staff=True, is_superuser=True))
    return client


def form_data(instance: Any, **extra: Any) -> dict[str, Any]:
    import json

    return {
        "name": instance.name,
        "config": json.dumps(instance.config),
        "total_capital": str(instance.total_capital),
        "capital_per_trade": str(instance.capital_per_trade),
        "max_positions": instance.max_positions,
        "max_position_size": str(instance.max_position_size),
        "max_daily_loss": str(instance.max_daily_loss),
        "sizing_method": instance.sizing_method,
        "frequency_seconds": instance.frequency_seconds,
        "trigger": instance.trigger,
        "mode": instance.mode,
        **extra,
    }


def url(instance: Any) -> str:
    return f"/admin/instances/strategyinstance/{instance.pk}/change/"


def test_change_page_shows_identity_read_only(staff_client: Any, instance: Any) -> None:
    response = staff_client.get(url(instance))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert not {"strategy", "version", "account", "market", "tenant"} & set(form.fields)


def test_admin_edit_goes_through_the_service(staff_client: Any, instance: Any) -> None:
    response = staff_client.post(
        url(instance), form_data(instance, config='{"side": "short"}', mode="observe")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    instance.refresh_from_db()
    assert instance.config["side"] == "short" and instance.config["window"] == 20  # replaced, defaults filled
    assert instance.config_revision == 2 and instance.mode == "observe"
    assert AuditEvent.objects.filter(action="instance.config", actor_label="staff@stratbox.test").exists()
    assert AuditEvent.objects.filter(action="instance.mode", actor_label="staff@stratbox.test").exists()


def test_admin_shows_service_errors_and_changes_nothing(staff_client: Any, instance: Any) -> None:
    response = staff_client.post(
        url(instance), form_data(instance, config='{"window": 1}', capital_per_trade="5000", mode="active")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert {"config", "capital_per_trade", "mode"} <= set(errors)
    fresh = StrategyInstance.objects.get(pk=instance.pk)
    assert (fresh.config, fresh.mode, fresh.capital_per_trade) == (
        instance.config,
        "off",
        instance.capital_per_trade,
    )


def test_power_off_action(staff_client: Any, instance: Any) -> None:
    StrategyInstance.objects.filter(pk=instance.pk).update(mode="active")
    response = staff_client.post(
        "/admin/instances/strategyinstance/", {"action": "power_off", "_selected_action": [str(instance.pk)]}
    )
    assert response.status_code == 302
    instance.refresh_from_db()
    assert instance.mode == "off"
    assert AuditEvent.objects.get(action="instance.mode").before == {"mode": "active"}
