"""Attaching to the runtime: read-only plain data for the trusted snapshot and the sandbox context
(`context.plugin_signals`), cached in Redis for the tick path."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import redis_client
from stratbox.notifications.services import settings_for
from stratbox.plugins import contract
from stratbox.plugins.models import (
    PluginArtifact,
    PluginMount,
)
from stratbox.plugins.services.registry import registry

logger = logging.getLogger(__name__)


CONTEXT_KEY = "sbx:plugins:ctx:{}"


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
