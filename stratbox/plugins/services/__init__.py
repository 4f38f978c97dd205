"""Writes for plugins: the registry, mounts, artifacts in, and their escalation to notifications.

Attach, never act: nothing here imports the trading services or writes an instance's config or
allocation. An accepted artifact becomes (1) an immutable `PluginArtifact` row, (2) a log line,
(3) — when its `execution_controls.strategy_runtime_metadata_allowed` is true — read-only plain
data for the sandbox context (`context.plugin_signals`, cached in Redis for the tick path), and
(4) when the contract's escalation rule says so, a `plugin_alert` notification whose per-channel
marker key is the contract's alert key.

Modules: `registry` (reads), `definitions` (writes), `mounts`, `artifacts` (in, escalation, staleness), `context` (read-only data
for the tick path).
"""

from __future__ import annotations

from stratbox.plugins.services.artifacts import MAX_ARTIFACT_BYTES, artifact_push, stale_sweep
from stratbox.plugins.services.context import (
    CACHE_SECONDS,
    CONTEXT_FIELDS,
    CONTEXT_KEY,
    IDS_KEY,
    context_refresh,
    instance_signals,
    plugin_context,
    plugin_snapshot,
)
from stratbox.plugins.services.definitions import definition_check, definition_save, definition_snapshot
from stratbox.plugins.services.mounts import mounts_config, mounts_set, targets_config, targets_set
from stratbox.plugins.services.registry import PluginError, registry, to_definition

__all__ = [
    "CACHE_SECONDS",
    "CONTEXT_FIELDS",
    "CONTEXT_KEY",
    "IDS_KEY",
    "MAX_ARTIFACT_BYTES",
    "PluginError",
    "artifact_push",
    "context_refresh",
    "definition_check",
    "definition_save",
    "definition_snapshot",
    "instance_signals",
    "mounts_config",
    "mounts_set",
    "plugin_context",
    "plugin_snapshot",
    "registry",
    "stale_sweep",
    "targets_config",
    "targets_set",
    "to_definition",
]
