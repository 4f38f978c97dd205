"""Artifacts in: validated, stored as immutable rows, logged and escalated to notifications; and a
pipeline that stopped, whose last signal turns stale (which alerts)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.notifications.channels import KINDS
from stratbox.notifications.models import EventType, NotificationEvent, Severity
from stratbox.notifications.services import event_emit, settings_for
from stratbox.plugins import contract
from stratbox.plugins.models import (
    ArtifactSource,
    PluginArtifact,
    PluginMount,
    PluginTargetMount,
)
from stratbox.plugins.services.context import context_refresh
from stratbox.plugins.services.registry import PluginError, registry
from tenants.models import Tenant

logger = logging.getLogger(__name__)


MAX_ARTIFACT_BYTES = 512 * 1024


def _mount_of_instance(instance: StrategyInstance, payload: Any) -> contract.Mount:
    plugin = str(payload.get("plugin") or "").strip() if isinstance(payload, Mapping) else ""
    row = (
        PluginMount.objects.filter(instance=instance, definition__plugin=plugin)
        .select_related("definition")
        .first()
        if plugin
        else None
    )
    if row is None:
        if not isinstance(payload, Mapping):
            raise contract.ContractError("strategy plugin signal must be a JSON object")
        if not plugin:
            raise contract.ContractError("plugin is required")
        raise PluginError(
            f"strategy plugin {plugin} is not mounted on this instance", code="PLUGIN_NOT_MOUNTED"
        )
    if not row.enabled:
        raise PluginError(
            f"strategy plugin {plugin} is mounted but disabled on this instance", code="PLUGIN_DISABLED"
        )
    return contract.Mount(
        plugin=plugin,
        strategy=instance.strategy.key,
        enabled=True,
        expected_mode=row.expected_mode,
        expected_schema_version=row.expected_schema_version,
    )


def _mount_of_target(tenant: Tenant, payload: Any) -> contract.Mount:
    if not isinstance(payload, Mapping):
        raise contract.ContractError("strategy plugin signal must be a JSON object")
    plugin = str(payload.get("plugin") or "").strip()
    target = str(payload.get("notification_target") or "").strip()
    if not plugin:
        raise contract.ContractError("plugin is required")
    if not target:
        raise contract.ContractError("notification_target is required")
    row = PluginTargetMount.objects.filter(
        tenant=tenant, notification_target=target, definition__plugin=plugin
    ).first()
    if row is None:
        raise PluginError(
            f"strategy plugin {plugin} has no notification target {target} mounted for this tenant",
            code="PLUGIN_NOT_MOUNTED",
        )
    if not row.enabled:
        raise PluginError(
            f"strategy plugin {plugin} notification target {target} is disabled", code="PLUGIN_DISABLED"
        )
    return contract.Mount(
        plugin=plugin,
        notification_target=target,
        expected_mode=row.expected_mode,
        expected_schema_version=row.expected_schema_version,
    )


def artifact_push(
    *,
    tenant: Tenant,
    raw: bytes,
    actor: Any,
    instance: StrategyInstance | None = None,
    source: str = ArtifactSource.API,
    now: datetime | None = None,
) -> PluginArtifact:
    """Validate and store one artifact (for `instance`'s mount, or a tenant notification target)."""
    now = now or timezone.now()
    if len(raw) > MAX_ARTIFACT_BYTES:
        raise PluginError(f"artifact larger than {MAX_ARTIFACT_BYTES} bytes", code="ARTIFACT_TOO_LARGE")
    reg = registry()
    try:
        payload = contract.load_json(raw)
        mount = (
            _mount_of_instance(instance, payload)
            if instance is not None
            else _mount_of_target(tenant, payload)
        )
        signal = contract.validate_artifact(payload, mount=mount, registry=reg)
    except contract.ContractError as exc:
        raise PluginError(str(exc)) from exc
    definition = reg[signal.plugin]
    if contract.is_stale(signal, definition, now):
        contract.mark_stale(signal)
    escalate = contract.should_alert(signal)
    with transaction.atomic():
        artifact = PluginArtifact.objects.create(
            tenant=tenant,
            instance=instance,
            target_type=signal.target_type,
            target=signal.target,
            plugin=signal.plugin,
            schema_version=signal.schema_version,
            as_of=signal.as_of[:40],
            generated_at=signal.generated_at[:40],
            canonical_route=signal.canonical_route[:40],
            suggested_action=signal.suggested_action[:40],
            would_trade_if_enabled=signal.would_trade_if_enabled,
            reason_codes=signal.reason_codes,
            stale=signal.stale,
            escalated=escalate,
            runtime_metadata_allowed=signal.runtime_metadata_allowed,
            sha256=contract.canonical_sha256(raw),
            raw=raw.decode("utf-8"),
            payload=signal.payload,
            source=source,
            pushed_by=getattr(actor, "email", "") or "",
        )
        locale = settings_for(tenant).locale
        logger.info(
            "strategy_plugin_signal tenant=%s instance=%s %s",
            tenant.pk,
            instance.pk if instance else "-",
            contract.log_line(signal, "en-US"),
        )
        if escalate:
            _escalate(artifact, signal, locale=locale)
        if instance is not None:
            transaction.on_commit(lambda: context_refresh(instance_id=instance.pk))
    return artifact


def _escalate(artifact: PluginArtifact, signal: contract.Signal, *, locale: str) -> None:
    context = contract.context_label(tenant_id=artifact.tenant_id, instance_id=artifact.instance_id)
    subject, body = contract.alert_message(signal, locale=locale, context=context)
    keys = {
        kind: contract.alert_key(signal, context=context, namespace=contract.alert_namespace(kind))
        for kind in {*KINDS.values(), "other"}
    }
    event_emit(
        tenant=artifact.tenant_id,
        instance=artifact.instance,
        event_type=EventType.PLUGIN_ALERT,
        severity=Severity.CRITICAL
        if signal.canonical_route in ("risk_off", "blocked")
        or signal.suggested_action in ("defend", "blocked")
        else Severity.WARNING,
        title=subject,
        body=body,
        dedup_key=keys["email"],
        locale=locale,
        payload={
            "artifact_id": str(artifact.pk),
            "sha256": artifact.sha256,
            "alert_keys": keys,
            **contract.report_section([signal])[0],
        },
    )


def stale_sweep(*, now: datetime | None = None) -> int:
    """Alert for each mount whose latest artifact was fresh when pushed and is stale now (route
    blocked, reason artifact:stale); once per artifact (the alert's natural key). Run by beat."""

    now = now or timezone.now()
    reg = registry()
    alerted = 0
    latest: list[tuple[PluginArtifact, contract.Mount]] = []
    for mount in PluginMount.objects.filter(enabled=True).select_related("definition", "instance__strategy"):
        row = (
            PluginArtifact.objects.filter(instance=mount.instance, plugin=mount.definition.plugin)
            .order_by("-received_at")
            .first()
        )
        if row is not None:
            m = contract.Mount(
                plugin=mount.definition.plugin,
                strategy=mount.instance.strategy.key,
                expected_mode=mount.expected_mode,
                expected_schema_version=mount.expected_schema_version,
            )
            latest.append((row, m))
    for target in PluginTargetMount.objects.filter(enabled=True).select_related("definition"):
        row = (
            PluginArtifact.objects.filter(
                tenant_id=target.tenant_id,
                instance__isnull=True,
                target=target.notification_target,
                plugin=target.definition.plugin,
            )
            .order_by("-received_at")
            .first()
        )
        if row is not None:
            latest.append(
                (
                    row,
                    contract.Mount(
                        plugin=target.definition.plugin, notification_target=target.notification_target
                    ),
                )
            )
    for row, mount in latest:
        if row.stale:
            continue  # stale on arrival: it alerted then
        try:
            signal = contract.validate_artifact(row.payload, mount=mount, registry=reg)
        except contract.ContractError:
            continue
        if not contract.is_stale(signal, reg[signal.plugin], now):
            continue
        contract.mark_stale(signal)
        context = contract.context_label(tenant_id=row.tenant_id, instance_id=row.instance_id)
        if NotificationEvent.objects.filter(
            tenant_id=row.tenant_id, dedup_key=contract.alert_key(signal, context=context)
        ).exists():
            continue
        with transaction.atomic():
            _escalate(row, signal, locale=settings_for(row.tenant_id).locale)
        alerted += 1
    return alerted
