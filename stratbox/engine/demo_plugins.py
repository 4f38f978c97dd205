"""The `make run` demo of sidecar plugins: a mount, a sample artifact, and an alert a user sees.

Staff extend the registry so the catalog's `sma_crossover` may mount `market_regime_control`
(audited, as any registry change); the demo instance mounts it; a local mail-catcher channel
(`DEMO_MAIL_URL`: an aiosmtpd server the launcher runs on `STRATBOX_MAIL_PORT`, default 1025, which prints every mail) is added when
a credentials key is configured; then the sample artifact (docs/plugins/) is pushed with today's
dates, which escalates (route risk_reduced) into the inbox and the mail catcher. Idempotent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from stratbox.notifications.models import Channel
from stratbox.notifications.services import channel_create
from stratbox.plugins.models import PluginArtifact, PluginDefinition
from stratbox.plugins.services import artifact_push, definition_save, definition_snapshot, mounts_set
from stratbox.trading.credentials import CredentialsUnavailable

SAMPLE = Path(settings.BASE_DIR) / "docs" / "plugins" / "market_regime_control.latest_signal.json"
DEMO_MAIL_URL = "mailto://127.0.0.1:{port}?to=demo@stratbox.local&from=alerts@stratbox.local&mode=insecure"


def demo_plugins_install(*, tenant: Any, owner: Any, staff: Any, instance: Any) -> str:
    if PluginArtifact.objects.filter(instance=instance).exists():
        return "demo plugin: market_regime_control already mounted with an artifact"
    row = PluginDefinition.objects.get(plugin="market_regime_control")
    key = instance.strategy.key
    if key not in row.supported_strategies:
        before = definition_snapshot(row)
        row.supported_strategies = [*row.supported_strategies, key]
        definition_save(row=row, actor=staff, before=before)
    mounts_set(
        instance=instance, raw=[{"plugin": "market_regime_control", "expected_mode": "shadow"}], actor=owner
    )
    channel_note = "no mail channel (set STRATBOX_CREDENTIALS_KEYS to store channels)"
    if not Channel.objects.filter(tenant=tenant).exists():
        try:
            port = settings.STRATBOX_MAIL_PORT
            url = DEMO_MAIL_URL.format(port=port)
            channel_create(tenant=tenant, actor=owner, name="Local mail catcher", url=url)
            channel_note = f"mail to the local catcher on 127.0.0.1:{port}"
        except CredentialsUnavailable:
            pass
    doc = json.loads(SAMPLE.read_text())
    now = datetime.now(UTC)
    doc.update(
        strategy=key, as_of=now.date().isoformat(), generated_at=now.isoformat().replace("+00:00", "Z")
    )
    artifact = artifact_push(
        tenant=tenant, raw=json.dumps(doc, ensure_ascii=False).encode(), actor=owner, instance=instance
    )
    return (
        f"demo plugin: market_regime_control on {instance.name}; artifact {artifact.sha256[:12]} "
        f"({artifact.canonical_route}/{artifact.suggested_action}) raised an alert: inbox, {channel_note}"
    )
