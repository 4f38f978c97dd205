"""Fixtures of the notifications suite: an encryption key and the loopback servers."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from tests.loopback import free_port, http_sink, smtp_sink  # noqa: F401 - fixtures


@pytest.fixture(autouse=True)
def _credentials_key(settings: Any) -> None:
    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]


def deliver_pending() -> None:
    """What the worker's deliver_event_task does for each new event, until none is left (a delivery
    may raise a new event: a channel's disabled notice)."""
    from stratbox.notifications.models import NotificationEvent
    from stratbox.notifications.services import event_deliver

    handled: set[int] = set()
    while True:
        pending = list(NotificationEvent.objects.exclude(pk__in=handled).order_by("pk"))
        if not pending:
            return
        for event in pending:
            handled.add(event.pk)
            event_deliver(event_id=event.pk)


def dead_url() -> str:
    """A webhook URL nobody listens on (connection refused at once)."""
    return f"json://127.0.0.1:{free_port()}/nobody"
