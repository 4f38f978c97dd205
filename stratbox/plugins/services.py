"""Writes for plugins: the registry, mounts, artifacts in, and their escalation to notifications.

Attach, never act: nothing here imports the trading services or writes an instance's config or
allocation. An accepted artifact becomes (1) an immutable `PluginArtifact` row, (2) a log line,
(3) — when its `execution_controls.strategy_runtime_metadata_allowed` is true — read-only plain
data for the sandbox context (`context.plugin_signals`, cached in Redis for the tick path), and
(4) when the contract's escalation rule says so, a `plugin_alert` notification whose per-channel
marker key is the contract's alert key.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import redis_client
from stratbox.notifications.channels import KINDS
from stratbox.notifications.models import EventType, Severity
from stratbox.notifications.services import event_emit, settings_for
from stratbox.plugins import contract
from stratbox.plugins.models import (
    ArtifactSource,
    PluginArtifact,
    PluginDefinition,
    PluginMount,
    PluginTargetMount,
)
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

MAX_ARTIFACT_BYTES = 512 * 1024
CONTEXT_KEY = "sbx:plugins:ctx:{}"


class PluginError(ApplicationError):
    """A refusal with the contract's message (code PLUGIN_CONTRACT) or another rule's."""

    def __init__(self, message: str, *, code: str = "PLUGIN_CONTRACT", field: str | None = None) -> None:
        # A 400 naming `field` ("artifact" when none), in the standard body.
        super().__init__(code, message, field or "artifact")


# --- registry -------------------------------------------------------------------------------------


def to_definition(row: PluginDefinition) -> contract.Definition:
    return contract.Definition(
        plugin=row.plugin,
        supported_strategies=frozenset(row.supported_strategies or []),
        supported_modes=tuple(row.supported_modes or ()),
        supported_schema_versions=tuple(row.supported_schema_versions or ()),
        default_schema_version=row.default_schema_version,
        supported_notification_targets=frozenset(row.supported_notification_targets or []),
        deprecated=row.deprecated,
        successor_plugin=row.successor.plugin if row.successor_id and row.successor else "",
        alert_channels=tuple(row.alert_channels or ()),
        max_artifact_age_hours=row.max_artifact_age_hours,
    )


def registry() -> dict[str, contract.Definition]:
    return {row.plugin: to_definition(row) for row in PluginDefinition.objects.select_related("successor")}


def definition_check(row: PluginDefinition) -> None:
    """The contract's registry rules (raised as PluginError for the admin form)."""
    if not row.supported_modes:
        raise PluginError(f"strategy plugin {row.plugin} must include at least one supported mode")
    for mode in row.supported_modes:
        if mode not in contract.SUPPORTED_MODES:
            raise PluginError(f"supported_mode must be one of shadow; got {mode!r}", field="supported_modes")
    if row.default_schema_version not in (row.supported_schema_versions or []):
        raise PluginError(
            f"strategy plugin {row.plugin} default_schema_version must be listed in supported_schema_versions",
            field="default_schema_version",
        )


@transaction.atomic
def definition_save(*, row: PluginDefinition, actor: Any, before: dict[str, Any] | None) -> PluginDefinition:
    definition_check(row)
    row.save()
    # What the ticks see depends on the registry (compatibility, maximum age): refresh after commit.
    mounted = list(PluginMount.objects.filter(definition=row).values_list("instance_id", flat=True))
    transaction.on_commit(lambda: [context_refresh(instance_id=i) for i in mounted])
    audit_record(
        tenant=None,
        actor=actor,
        action="plugin_definition.update" if before else "plugin_definition.create",
        target=row,
        before=before,
        after=definition_snapshot(row),
    )
    return row


def definition_snapshot(row: PluginDefinition) -> dict[str, Any]:
    return {
        "plugin": row.plugin,
        "supported_strategies": list(row.supported_strategies or []),
        "supported_notification_targets": list(row.supported_notification_targets or []),
        "supported_modes": list(row.supported_modes or []),
        "supported_schema_versions": list(row.supported_schema_versions or []),
        "default_schema_version": row.default_schema_version,
        "deprecated": row.deprecated,
        "successor": row.successor.plugin if row.successor_id and row.successor else None,
        "alert_channels": list(row.alert_channels or []),
        "max_artifact_age_hours": row.max_artifact_age_hours,
    }


# --- mounts ---------------------------------------------------------------------------------------


def _refuse(exc: contract.ContractError) -> PluginError:
    return PluginError(str(exc), code="PLUGIN_CONTRACT", field="strategy_plugins")


def mounts_config(instance: StrategyInstance) -> dict[str, Any]:
    """The instance's mounts in the contract's shape (what `mounts_set` accepts back)."""
    mounts = PluginMount.objects.filter(instance=instance).select_related("definition")
    return {
        "strategy_plugins": [
            contract.Mount(
                plugin=m.definition.plugin,
                strategy=instance.strategy.key,
                enabled=m.enabled,
                expected_mode=m.expected_mode,
                expected_schema_version=m.expected_schema_version,
            ).as_dict()
            for m in mounts
        ]
    }


@transaction.atomic
def mounts_set(*, instance: StrategyInstance, raw: Any, actor: Any) -> list[PluginMount]:
    """Replace the instance's mounts with `raw` (the contract's `strategy_plugins` config), fail-closed."""
    reg = registry()
    try:
        parsed = contract.parse_mounts(raw, strategy=instance.strategy.key, registry=reg)
    except contract.ContractError as exc:
        raise _refuse(exc) from exc
    before = mounts_config(instance)
    PluginMount.objects.filter(instance=instance).delete()
    rows = {d.plugin: d for d in PluginDefinition.objects.filter(plugin__in=[m.plugin for m in parsed])}
    created = [
        PluginMount.objects.create(
            tenant_id=instance.tenant_id,
            instance=instance,
            definition=rows[m.plugin],
            enabled=m.enabled,
            expected_mode=m.expected_mode,
            expected_schema_version=m.expected_schema_version,
        )
        for m in parsed
    ]
    audit_record(
        tenant=instance.tenant,
        actor=actor,
        action="instance.plugin_mounts",
        target=instance,
        before=before,
        after={"strategy_plugins": [m.as_dict() for m in parsed]},
    )
    transaction.on_commit(lambda: context_refresh(instance_id=instance.pk))
    return created


def targets_config(tenant: Tenant) -> dict[str, Any]:
    rows = PluginTargetMount.objects.filter(tenant=tenant).select_related("definition")
    return {
        "notification_targets": [
            contract.Mount(
                plugin=m.definition.plugin,
                notification_target=m.notification_target,
                enabled=m.enabled,
                expected_mode=m.expected_mode,
                expected_schema_version=m.expected_schema_version,
            ).as_dict()
            for m in rows
        ]
    }


@transaction.atomic
def targets_set(*, tenant: Tenant, raw: Any, actor: Any) -> list[PluginTargetMount]:
    reg = registry()
    try:
        parsed = contract.parse_targets(raw, registry=reg)
    except contract.ContractError as exc:
        raise PluginError(str(exc), field="notification_targets") from exc
    before = targets_config(tenant)
    PluginTargetMount.objects.filter(tenant=tenant).delete()
    rows = {d.plugin: d for d in PluginDefinition.objects.filter(plugin__in=[m.plugin for m in parsed])}
    created = [
        PluginTargetMount.objects.create(
            tenant=tenant,
            notification_target=m.notification_target,
            definition=rows[m.plugin],
            enabled=m.enabled,
            expected_mode=m.expected_mode,
            expected_schema_version=m.expected_schema_version,
        )
        for m in parsed
    ]
    audit_record(
        tenant=tenant,
        actor=actor,
        action="tenant.plugin_targets",
        target=tenant,
        before=before,
        after={"notification_targets": [m.as_dict() for m in parsed]},
    )
    return created


# --- artifacts ------------------------------------------------------------------------------------


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


# --- attaching to the runtime (read-only data for the trusted snapshot) ----------------------------


def _signal_of(
    artifact: PluginArtifact,
    reg: Mapping[str, contract.Definition],
    instance: StrategyInstance,
    mount: PluginMount,
) -> contract.Signal:
    """Re-validate a stored artifact against today's registry (the contract checks again at load)."""
    signal = contract.validate_artifact(
        artifact.payload,
        mount=contract.Mount(
            plugin=mount.definition.plugin,
            strategy=instance.strategy.key,
            expected_mode=mount.expected_mode,
            expected_schema_version=mount.expected_schema_version,
        ),
        registry=reg,
    )
    return signal


def instance_signals(*, instance: StrategyInstance, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per enabled mount: its latest artifact as a report entry, or the error that keeps it out."""
    now = now or timezone.now()
    reg = registry()
    out: list[dict[str, Any]] = []
    for mount in PluginMount.objects.filter(instance=instance, enabled=True).select_related("definition"):
        artifact = (
            PluginArtifact.objects.filter(instance=instance, plugin=mount.definition.plugin)
            .order_by("-received_at")
            .first()
        )
        if artifact is None:
            out.append({"plugin": mount.definition.plugin, "status": "no_artifact"})
            continue
        try:
            signal = _signal_of(artifact, reg, instance, mount)
        except contract.ContractError as exc:
            out.append(
                {
                    "plugin": mount.definition.plugin,
                    "status": "error",
                    "error": str(exc),
                    "lines": ["plugin-error=config validation failed|fallback=built-in", "consumption=none"],
                }
            )
            continue
        if contract.is_stale(signal, reg[signal.plugin], now):
            contract.mark_stale(signal)
        entry = contract.report_section([signal])[0]
        entry.update(
            status="stale" if signal.stale else "ok",
            artifact_id=str(artifact.pk),
            sha256=artifact.sha256,
            received_at=artifact.received_at.isoformat(),
            escalates=contract.should_alert(signal),
            runtime_metadata_allowed=signal.runtime_metadata_allowed,
            line=contract.log_line(signal, settings_for(instance.tenant_id).locale),
            produced_at=(contract.signal_produced_at(signal) or now).timestamp(),
            max_artifact_age_hours=reg[signal.plugin].max_artifact_age_hours,
        )
        out.append(entry)
    return out


def context_refresh(*, instance_id: Any) -> None:
    """Cache what the sandbox may see (allowed signals only) for the tick path; one key per instance."""
    instance = StrategyInstance.objects.filter(pk=instance_id).select_related("strategy").first()
    key = CONTEXT_KEY.format(instance_id)
    try:
        client = redis_client()
        if instance is None:
            client.delete(key)
            client.srem(IDS_KEY, str(instance_id))
            return
        allowed = [s for s in instance_signals(instance=instance) if s.get("runtime_metadata_allowed")]
        pipe = client.pipeline()
        if allowed:
            pipe.set(key, json.dumps(allowed, default=str))
            pipe.sadd(IDS_KEY, str(instance_id))
        else:
            pipe.delete(key)
            pipe.srem(IDS_KEY, str(instance_id))
        pipe.execute()
    except Exception:  # the context only loses plugin data (the strategy runs on its built-in logic)
        logger.warning("plugin context refresh failed for %s", instance_id, exc_info=True)


CONTEXT_FIELDS = (
    "plugin",
    "schema_version",
    "as_of",
    "canonical_route",
    "suggested_action",
    "reason_codes",
    "position_control",
    "would_trade_if_enabled",
    "stale",
)


IDS_KEY = "sbx:plugins:ctx:ids"
CACHE_SECONDS = 2.0
# Per process, a cache of Redis (never the source of truth): which instances have plugin context
# and that context, re-read at most every CACHE_SECONDS, so a tick without plugins costs no round trip.
_cache: dict[str, Any] = {"at": 0.0, "ids": frozenset(), "entries": {}}


def _context_entries(instance_id: str) -> list[dict[str, Any]]:
    now = time.monotonic()
    if now - _cache["at"] > CACHE_SECONDS:
        try:
            ids = frozenset(redis_client().smembers(IDS_KEY))
        except Exception:
            ids = frozenset()
        _cache.update(
            at=now, ids=frozenset(i.decode() if isinstance(i, bytes) else str(i) for i in ids), entries={}
        )
    if instance_id not in _cache["ids"]:
        return []
    entries = _cache["entries"]
    if instance_id not in entries:
        try:
            raw = redis_client().get(CONTEXT_KEY.format(instance_id))
        except Exception:
            raw = None
        entries[instance_id] = json.loads(raw) if raw else []
    return entries[instance_id]


def plugin_context(instance_id: Any, now: float) -> dict[str, Any]:
    """`{plugin: {machine fields}}` for the snapshot (plain JSON data); staleness judged at `now`."""
    out: dict[str, Any] = {}
    for entry in _context_entries(str(instance_id)):
        view = {k: copy.deepcopy(entry.get(k)) for k in CONTEXT_FIELDS}
        max_age = float(entry.get("max_artifact_age_hours") or 0)
        if max_age and now - float(entry.get("produced_at") or 0) > max_age * 3600:
            view.update(stale=True, canonical_route=contract.BLOCKED, suggested_action=contract.BLOCKED)
            codes = list(view.get("reason_codes") or [])
            view["reason_codes"] = (
                codes if contract.STALE_REASON in codes else [contract.STALE_REASON, *codes]
            )
        out[str(entry["plugin"])] = view
    return out


def plugin_snapshot(instance_id: Any, now: float) -> dict[str, Any]:
    """The snapshot's `plugin_signals` part: absent unless the instance has allowed signals."""
    signals = plugin_context(instance_id, now)
    return {"plugin_signals": signals} if signals else {}


# --- a pipeline that stopped: the last signal turns stale, and that alerts --------------------------


def stale_sweep(*, now: datetime | None = None) -> int:
    """Alert for each mount whose latest artifact was fresh when pushed and is stale now (route
    blocked, reason artifact:stale); once per artifact (the alert's natural key). Run by beat."""
    from stratbox.notifications.models import NotificationEvent

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
