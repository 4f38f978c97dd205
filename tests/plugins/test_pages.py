"""The web UI of plugins and notifications: the instance page's plugin card and artifact upload,
the Notifications page (channels, Test send, subscriptions, inbox, delivery log), and the nav badge."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from stratbox.notifications.models import Channel, NotificationEvent, Subscription
from stratbox.plugins.models import PluginArtifact
from tests.factories import add_member
from tests.notifications.conftest import deliver_pending
from tests.plugins.conftest import MRC, artifact, body

pytestmark = pytest.mark.django_db


@pytest.fixture
def web(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_card_shows_signals_and_upload_is_validated(web: Client, api_client: Any, instance: Any) -> None:
    page = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    assert 'id="plugins"' in page and "No plugin is mounted" in page
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/", [{"plugin": "market_regime_control"}], format="json"
    )
    page = web.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    assert 'data-plugin="market_regime_control" data-status="no_artifact"' in page
    upload = reverse("frontend:instance_plugin_upload", args=[instance.id])
    bad = SimpleUploadedFile("latest_signal.json", body(artifact(MRC, mode="live")), "application/json")
    page = web.post(upload, {"artifact": bad}, follow=True).content.decode()
    assert "Artifact refused: mode must be one of shadow; got &#x27;live&#x27; [PLUGIN_CONTRACT]" in page
    assert not PluginArtifact.objects.exists()
    good = SimpleUploadedFile("latest_signal.json", body(artifact(MRC)), "application/json")
    page = web.post(upload, {"artifact": good}, follow=True).content.decode()
    assert "Artifact accepted: market_regime_control risk_reduced/delever; an alert was raised." in page
    assert PluginArtifact.objects.get().source == "upload"
    assert 'data-plugin="market_regime_control" data-status="ok"' in page
    assert "market_regime_control route=risk_reduced" in page  # the artifact's own localized log line
    assert "visible to the strategy as context.plugin_signals" in page
    # The nav shows the unread inbox count.
    assert "data-inbox-badge>1<" in page


def test_viewer_cannot_upload(instance: Any, tenant: Any, api_client: Any) -> None:
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/", [{"plugin": "market_regime_control"}], format="json"
    )
    viewer = Client()
    viewer.force_login(add_member(tenant, role="viewer"))
    page = viewer.get(reverse("frontend:instance_detail", args=[instance.id])).content.decode()
    assert 'id="plugin-upload"' not in page
    good = SimpleUploadedFile("latest_signal.json", body(artifact(MRC)), "application/json")
    r = viewer.post(reverse("frontend:instance_plugin_upload", args=[instance.id]), {"artifact": good})
    assert r.status_code == 403 and not PluginArtifact.objects.exists()


def test_notifications_page_channels_test_send_and_log(web: Client, instance: Any, smtp_sink: Any) -> None:
    r = web.post(
        reverse("frontend:notification_channel_add"), {"name": "ops", "url": smtp_sink.url()}, follow=True
    )
    page = r.content.decode()
    channel = Channel.objects.get()
    assert escape(f"Channel ops added ({channel.url_redacted}).") in page
    web.post(reverse("frontend:notification_channel_test", args=[channel.id]))
    deliver_pending()
    web.post(
        reverse("frontend:notification_subscription_add"),
        {
            "channel": str(channel.id),
            "event_type": "order_filled",
            "level": "on",
            "instance": str(instance.id),
        },
    )
    assert Subscription.objects.get().level == "on"
    web.post(reverse("frontend:notification_settings"), {"locale": "zh-CN"})
    page = web.get(reverse("frontend:notifications")).content.decode()
    assert 'data-status="verified"' in page
    assert 'id="delivery-log"' in page and '<tr data-status="sent">' in page
    assert "Stratbox test notification" in page
    assert 'value="zh-CN" selected' in page
    web.post(reverse("frontend:notification_inbox_read"))
    assert not NotificationEvent.objects.filter(read_at__isnull=True).exists()


def test_webhook_secret_is_shown_once(web: Client, tenant: Any) -> None:
    web.post(reverse("frontend:notification_channel_add"), {"name": "hook", "url": "json://127.0.0.1:9/x"})
    first = web.get(reverse("frontend:notifications")).content.decode()
    assert 'id="channel-secret"' in first
    assert 'id="channel-secret"' not in web.get(reverse("frontend:notifications")).content.decode()
