"""Channels: encrypted at rest, shown redacted, Test send on loopback, failing → disabled with a notice."""

from __future__ import annotations

from typing import Any

import pytest

from stratbox.notifications.models import Channel, Delivery, NotificationEvent
from stratbox.notifications.services import delivery_attempt, retry_delay
from tests.instances.conftest import errors_by_attr
from tests.notifications.conftest import dead_url, deliver_pending

pytestmark = pytest.mark.django_db


def add(client: Any, name: str, url: str) -> Any:
    return client.post("/api/v1/notifications/channels/", {"name": name, "url": url}, format="json")


def test_channel_url_is_encrypted_and_shown_redacted(api_client: Any) -> None:
    url = "mailto://mailer:s3cr3t-pass@127.0.0.1:2525?to=ops@acme.test&from=bot@acme.test"
    r = add(api_client, "ops mail", url)
    assert r.status_code == 201, r.json()
    assert "s3cr3t-pass" not in r.content.decode()
    assert r.json()["kind"] == "email" and r.json()["status"] == "new"
    assert r.json()["signing_secret"] == ""
    row = Channel.objects.get(pk=r.json()["id"])
    assert "s3cr3t-pass" not in row.url_ciphertext and "s3cr3t-pass" not in row.url_redacted
    listed = api_client.get("/api/v1/notifications/channels/")
    assert "s3cr3t-pass" not in listed.content.decode()
    assert listed.json()["results"][0]["url"] == row.url_redacted


def test_invalid_url_and_missing_key_are_refused(api_client: Any, settings: Any) -> None:
    r = add(api_client, "bad", "notaurl")
    assert r.status_code == 400 and errors_by_attr(r) == {
        "url": "must be an apprise URL such as mailto://…, tgram://…, ntfy://… or json://…."
    }
    r = add(api_client, "bad", "nosuchscheme://x/y")
    assert r.json()["errors"][0]["code"] == "INVALID_CHANNEL_URL"
    settings.STRATBOX_CREDENTIALS_KEYS = []
    r = add(api_client, "mail", "mailto://127.0.0.1:25?to=a@b.test&from=c@d.test")
    assert r.status_code == 400 and "STRATBOX_CREDENTIALS_KEYS" in errors_by_attr(r)["url"]
    assert not Channel.objects.exists()


def test_test_send_delivers_on_loopback_and_verifies(api_client: Any, smtp_sink: Any) -> None:
    channel = add(api_client, "mail", smtp_sink.url()).json()
    r = api_client.post(f"/api/v1/notifications/channels/{channel['id']}/test/")
    assert r.status_code == 202
    deliver_pending()
    assert len(smtp_sink.messages) == 1
    assert smtp_sink.messages[0]["Subject"] == "Stratbox test notification"
    log = api_client.get("/api/v1/notifications/deliveries/").json()["results"]
    assert len(log) == 1
    assert (
        log[0]["status"] == "sent" and log[0]["channel"] == channel["id"] and log[0]["event_type"] == "test"
    )
    assert log[0]["latency_ms"] > 0 and log[0]["target_redacted"] == channel["url"]
    assert api_client.get(f"/api/v1/notifications/channels/{channel['id']}/").json()["status"] == "verified"


def test_failing_channel_is_disabled_after_n_failures_with_a_notice(api_client: Any, smtp_sink: Any) -> None:
    api_client.patch("/api/v1/notifications/settings/", {"failure_limit": 2}, format="json")
    bad = add(api_client, "dead hook", dead_url()).json()
    add(api_client, "mail", smtp_sink.url())
    for _ in range(2):
        api_client.post(f"/api/v1/notifications/channels/{bad['id']}/test/")
    deliver_pending()
    channel = Channel.objects.get(pk=bad["id"])
    assert channel.status == "disabled" and channel.consecutive_failures == 2
    failed = Delivery.objects.filter(channel=channel, status="failed")
    assert failed.count() == 2
    assert all("A Connection error occurred sending JSON notification" in d.error for d in failed), [
        d.error for d in failed
    ]
    notice = NotificationEvent.objects.get(event_type="channel_disabled")
    assert notice.title == "Channel 'dead hook' was disabled"
    # The owner's notice reaches the other channel; the dead one skips everything now.
    assert any(m["Subject"] == "Channel 'dead hook' was disabled" for m in smtp_sink.messages)
    assert not Delivery.objects.filter(channel=channel, event=notice).exclude(reason="disabled").exists()
    # Re-enabled by a user, it is tried again.
    r = api_client.patch(f"/api/v1/notifications/channels/{bad['id']}/", {"enabled": True}, format="json")
    assert r.json()["status"] == "new"


def test_retry_backoff_and_attempt_rows(api_client: Any, http_sink: Any) -> None:
    channel = add(api_client, "hook", f"json://{http_sink.base}/h").json()
    http_sink.status = 500
    api_client.post(f"/api/v1/notifications/channels/{channel['id']}/test/")
    event = NotificationEvent.objects.get(event_type="test")
    from stratbox.notifications.services import event_deliver

    assert event_deliver(event_id=event.pk) == [(channel["id"], 2)]
    assert [retry_delay(n) for n in (2, 3, 4, 5)] == [5, 30, 120, None]
    http_sink.status = 200
    second = delivery_attempt(event_id=event.pk, channel_id=channel["id"], attempt=2)
    assert second is not None and second.status == "sent"
    rows = list(Delivery.objects.filter(event=event).order_by("attempt").values_list("attempt", "status"))
    assert rows == [(1, "failed"), (2, "sent")]
    assert len(http_sink.requests) == 2


def test_other_tenant_cannot_see_or_use_channels(
    api_client: Any, other_api_client: Any, smtp_sink: Any
) -> None:
    channel = add(api_client, "mail", smtp_sink.url()).json()
    for method, path in (
        ("get", f"/api/v1/notifications/channels/{channel['id']}/"),
        ("patch", f"/api/v1/notifications/channels/{channel['id']}/"),
        ("delete", f"/api/v1/notifications/channels/{channel['id']}/"),
        ("post", f"/api/v1/notifications/channels/{channel['id']}/test/"),
    ):
        assert getattr(other_api_client, method)(path, {"enabled": False}, format="json").status_code == 404
    assert other_api_client.get("/api/v1/notifications/channels/").json()["results"] == []
    r = other_api_client.post(
        "/api/v1/notifications/subscriptions/",
        {"channel": channel["id"], "event_type": "plugin_alert", "level": "off"},
        format="json",
    )
    assert r.status_code == 400 and errors_by_attr(r) == {"channel": "No such channel."}
    assert not NotificationEvent.objects.exists()
    assert other_api_client.get("/api/v1/notifications/deliveries/").json()["results"] == []
