"""Delivery on a real Celery worker: an event committed by the API is delivered by the worker to the
loopback SMTP server; a failing webhook is retried with backoff, one delivery row per attempt."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet

from stratbox.notifications.models import Delivery
from tests.conftest import WorkerProcess

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def mail_worker(monkeypatch: Any, settings: Any, celery_queue: str) -> Iterator[WorkerProcess]:
    key = Fernet.generate_key().decode()
    settings.STRATBOX_CREDENTIALS_KEYS = [key]
    monkeypatch.setenv("STRATBOX_CREDENTIALS_KEYS", key)  # the worker decrypts the channel URLs
    proc = WorkerProcess(name=f"n{uuid.uuid4().hex[:6]}", queue=celery_queue).start()
    try:
        yield proc
    finally:
        proc.stop()


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_worker_delivers_and_retries(
    api_client: Any, mail_worker: WorkerProcess, smtp_sink: Any, http_sink: Any
) -> None:
    mail = api_client.post(
        "/api/v1/notifications/channels/", {"name": "mail", "url": smtp_sink.url()}, format="json"
    ).json()
    hook = api_client.post(
        "/api/v1/notifications/channels/",
        {"name": "hook", "url": f"json://{http_sink.base}/h"},
        format="json",
    ).json()
    assert api_client.post(f"/api/v1/notifications/channels/{mail['id']}/test/").status_code == 202
    wait_for(lambda: smtp_sink.messages)
    assert smtp_sink.messages[0]["Subject"] == "Stratbox test notification"
    # The message reaches the SMTP server before the worker commits its delivery row.
    wait_for(lambda: Delivery.objects.filter(channel_id=mail["id"], status="sent").exists())
    assert Delivery.objects.filter(channel_id=mail["id"]).count() == 1

    http_sink.status = 503  # the first attempt fails; the retry 5 s later succeeds
    api_client.post(f"/api/v1/notifications/channels/{hook['id']}/test/")
    wait_for(lambda: Delivery.objects.filter(channel_id=hook["id"], status="failed").exists())
    http_sink.status = 200
    wait_for(lambda: Delivery.objects.filter(channel_id=hook["id"], status="sent").exists(), timeout=90)
    rows = list(
        Delivery.objects.filter(channel_id=hook["id"]).order_by("attempt").values_list("attempt", "status")
    )
    assert rows == [(1, "failed"), (2, "sent")]
    first, second = Delivery.objects.filter(channel_id=hook["id"]).order_by("attempt")
    assert (second.created_at - first.created_at).total_seconds() >= 4.5  # the backoff
    assert len(http_sink.requests) == 2
