"""`make run`'s plugin demo: the demo instance mounts market_regime_control, the sample artifact is
accepted and escalates, and the alert reaches the demo's mail-catcher channel (here a loopback
aiosmtpd server standing in for the launcher's on port 1025)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from stratbox.engine import demo_plugins
from stratbox.notifications.models import Channel, NotificationEvent
from stratbox.plugins.models import PluginArtifact, PluginMount
from tenants.models import AuditEvent
from tests.notifications.conftest import deliver_pending

pytestmark = pytest.mark.django_db


def test_demo_mounts_pushes_and_alerts(smtp_sink: Any, settings: Any) -> None:
    settings.STRATBOX_MAIL_PORT = smtp_sink.port  # the launcher's mail catcher, here the test's sink
    assert demo_plugins.DEMO_MAIL_URL.format(port=smtp_sink.port).startswith(
        f"mailto://127.0.0.1:{smtp_sink.port}?"
    )
    call_command("bootstrap_demo")
    mount = PluginMount.objects.select_related("instance", "definition").get()
    assert (mount.definition.plugin, mount.instance.name) == ("market_regime_control", "Demo SMA crossover")
    artifact = PluginArtifact.objects.get()
    assert (artifact.canonical_route, artifact.stale, artifact.escalated) == ("risk_reduced", False, True)
    assert AuditEvent.objects.filter(
        action="plugin_definition.update", actor__email="admin@stratbox.local"
    ).exists()
    assert Channel.objects.get().name == "Local mail catcher"
    deliver_pending()
    (mail,) = [m for m in smtp_sink.messages if "Strategy plugin alert" in m["Subject"]]
    assert mail["To"] == "demo@stratbox.local"
    assert mail["Subject"].endswith("Strategy plugin alert: market_regime_control | risk_reduced")
    assert NotificationEvent.objects.filter(event_type="plugin_alert").count() == 1
    call_command("bootstrap_demo")  # idempotent: no second artifact or alert
    assert (
        PluginArtifact.objects.count() == 1
        and NotificationEvent.objects.filter(event_type="plugin_alert").count() == 1
    )
