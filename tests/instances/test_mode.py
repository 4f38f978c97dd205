"""Mode transitions (off | observe | active), the power/activate toggles, and deletion rules."""

from __future__ import annotations

from typing import Any

import pytest

from stratbox.instances.models import StrategyInstance
from tenants.models import AuditEvent
from tests.instances.conftest import errors_by_attr, snapshot

ACTIVATION_MESSAGE = "Activation is disabled while the instance is off; power it on (observe) first."


def url(instance: Any, action: str = "") -> str:
    return f"/api/v1/instances/{instance.id}/{action + '/' if action else ''}"


def put_in(instance: Any, mode: str) -> None:
    StrategyInstance.objects.filter(pk=instance.pk).update(mode=mode)


@pytest.mark.parametrize(
    ("start", "target", "status"),
    [
        ("off", "observe", 200),  # power on
        ("observe", "off", 200),  # power off
        ("observe", "active", 200),  # activate
        ("active", "observe", 200),  # deactivate
        ("active", "off", 200),  # emergency stop
        ("off", "active", 409),  # activation refused while off
        ("off", "off", 200),  # idempotent
        ("observe", "observe", 200),
        ("active", "active", 200),
    ],
)
def test_mode_transitions(
    api_client: Any,
    user: Any,
    instance: Any,
    start: str,
    target: str,
    status: int,
    django_capture_on_commit_callbacks: Any,
) -> None:
    put_in(instance, start)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(url(instance, "mode"), {"mode": target}, format="json")
    assert response.status_code == status, response.content
    instance.refresh_from_db()
    events = AuditEvent.objects.filter(action="instance.mode", target_id=str(instance.id))
    if status == 409:
        assert response.json()["errors"][0] == {
            "code": "ACTIVATION_WHILE_OFF",
            "detail": ACTIVATION_MESSAGE,
            "attr": None,
        }
        assert instance.mode == start
        assert not events.exists() and callbacks == []
    elif start == target:
        assert instance.mode == start and not events.exists() and callbacks == []
    else:
        assert response.json()["mode"] == target and instance.mode == target
        event = events.get()
        assert (event.before, event.after, event.actor) == ({"mode": start}, {"mode": target}, user)
        # One engine hook (the mode-change notification adds its own after-commit delivery).
        engine_hooks = [
            c for c in callbacks if getattr(getattr(c, "func", None), "__name__", "") == "instance_changed"
        ]
        assert len(engine_hooks) == 1


def test_unknown_mode_is_400(api_client: Any, instance: Any) -> None:
    response = api_client.post(url(instance, "mode"), {"mode": "paused"}, format="json")
    assert response.status_code == 400 and list(errors_by_attr(response)) == ["mode"]
    instance.refresh_from_db()
    assert instance.mode == "off"


@pytest.mark.parametrize(
    ("start", "on", "expected"),
    [
        ("off", True, "observe"),
        ("observe", True, "observe"),
        ("active", True, "active"),
        ("off", False, "off"),
        ("observe", False, "off"),
        ("active", False, "off"),
    ],
)
def test_power_toggle(api_client: Any, instance: Any, start: str, on: bool, expected: str) -> None:
    put_in(instance, start)
    response = api_client.post(url(instance, "power"), {"on": on}, format="json")
    assert response.status_code == 200 and response.json()["mode"] == expected
    instance.refresh_from_db()
    assert instance.mode == expected


@pytest.mark.parametrize(
    ("start", "active", "status", "expected"),
    [
        ("observe", True, 200, "active"),
        ("active", True, 200, "active"),
        ("off", True, 409, "off"),
        ("active", False, 200, "observe"),
        ("observe", False, 200, "observe"),
        ("off", False, 200, "off"),
    ],
)
def test_activate_toggle(
    api_client: Any, instance: Any, start: str, active: bool, status: int, expected: str
) -> None:
    put_in(instance, start)
    response = api_client.post(url(instance, "activate"), {"active": active}, format="json")
    assert response.status_code == status
    if status == 409:
        assert response.json()["errors"][0]["detail"] == ACTIVATION_MESSAGE
    instance.refresh_from_db()
    assert instance.mode == expected


def test_toggles_require_their_boolean(api_client: Any, instance: Any) -> None:
    assert errors_by_attr(api_client.post(url(instance, "power"), {}, format="json")).keys() == {"on"}
    assert errors_by_attr(api_client.post(url(instance, "activate"), {}, format="json")).keys() == {"active"}


@pytest.mark.parametrize("mode", ["observe", "active"])
def test_delete_refused_unless_off(api_client: Any, instance: Any, mode: str) -> None:
    put_in(instance, mode)
    before = snapshot(instance)
    response = api_client.delete(url(instance))
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "INSTANCE_NOT_OFF"
    assert snapshot(instance) == before


def test_delete_when_off(api_client: Any, user: Any, instance: Any) -> None:
    response = api_client.delete(url(instance))
    assert response.status_code == 204
    assert not StrategyInstance.objects.filter(pk=instance.pk).exists()
    event = AuditEvent.objects.get(action="instance.delete", target_id=str(instance.id))
    assert event.actor == user and event.before["strategy"] == "t-sma" and event.after is None
    assert api_client.get(url(instance)).status_code == 404


@pytest.mark.parametrize(
    ("action", "payload"),
    [("mode", {"mode": "observe"}), ("power", {"on": True}), ("activate", {"active": True}), ("", None)],
)
def test_viewer_cannot_change_mode_or_delete(
    viewer_client: Any, instance: Any, action: str, payload: Any
) -> None:
    put_in(instance, "observe")
    before = snapshot(instance)
    if action:
        response = viewer_client.post(url(instance, action), payload, format="json")
    else:
        response = viewer_client.delete(url(instance))
    assert response.status_code == 403
    assert snapshot(instance) == before
