"""The engine hook: subscribers hear about committed changes only, and one failure harms nobody."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction

from stratbox.instances import events
from stratbox.instances.services import instance_create, instance_set_mode


@pytest.fixture
def heard() -> Iterator[list[uuid.UUID]]:
    received: list[uuid.UUID] = []
    events.subscribe_instance_changed(received.append)
    events.subscribe_instance_changed(received.append)  # double registration is a no-op
    yield received
    events.unsubscribe_instance_changed(received.append)


def test_subscribers_hear_after_commit_only(
    heard: list[uuid.UUID], create_kwargs: dict[str, Any], user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        instance = instance_create(**create_kwargs)
    assert heard == [instance.id]
    with django_capture_on_commit_callbacks(execute=True):
        instance_set_mode(instance=instance, actor=user, mode="observe")
    assert heard == [instance.id, instance.id]


def test_rolled_back_change_is_not_announced(
    heard: list[uuid.UUID], instance: Any, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                instance_set_mode(instance=instance, actor=user, mode="observe")
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert heard == []
    instance.refresh_from_db()
    assert instance.mode == "off"


def test_failing_subscriber_does_not_block_others(heard: list[uuid.UUID], caplog: Any) -> None:
    def broken(instance_id: uuid.UUID) -> None:
        raise ValueError("boom")

    events._instance_changed_subscribers.insert(0, broken)
    try:
        target = uuid.uuid4()
        events.instance_changed(target)
    finally:
        events.unsubscribe_instance_changed(broken)
    assert heard == [target]
    assert "subscriber" in caplog.text and "boom" in caplog.text
