"""Registry checks and mount configs: which plugin, for which strategy or notification target,
in which mode and schema version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stratbox.plugins.contract.values import (
    ContractError,
    Definition,
    Mount,
    _has_key,
    _mode,
    _optional,
    _required,
    as_bool,
)


def definition_for(plugin: str, registry: Mapping[str, Definition]) -> Definition:
    """Stricter than the contract: a plugin with no definition is refused, never let through."""
    definition = registry.get(plugin)
    if definition is None:
        raise ContractError(
            f"strategy plugin {plugin} is not a registered plugin; registered plugins: "
            f"{', '.join(sorted(registry)) or '(none)'}"
        )
    return definition


def check_strategy(definition: Definition, strategy: str, source: str) -> None:
    if strategy not in definition.supported_strategies:
        raise ContractError(
            f"strategy plugin {definition.plugin} does not support strategy {strategy} in {source}; "
            f"supported strategies: {', '.join(sorted(definition.supported_strategies)) or '(none)'}"
        )


def check_target(definition: Definition, target: str, source: str) -> None:
    if target not in definition.supported_notification_targets:
        raise ContractError(
            f"strategy plugin {definition.plugin} does not support notification target {target} in {source}; "
            f"supported notification targets: {', '.join(sorted(definition.supported_notification_targets)) or '(none)'}"
        )


def check_mode(definition: Definition, mode: str, source: str) -> None:
    if mode not in definition.supported_modes:
        raise ContractError(
            f"strategy plugin {definition.plugin} does not support mode {mode} in {source}; "
            f"supported modes: {', '.join(definition.supported_modes)}"
        )


def check_schema(definition: Definition, schema_version: str, source: str) -> None:
    if schema_version not in definition.supported_schema_versions:
        raise ContractError(
            f"strategy plugin {definition.plugin} does not support schema_version {schema_version} in {source}; "
            f"supported schema versions: {', '.join(definition.supported_schema_versions)}"
        )


def _mount_items(raw: Any, *, key: str, fallback: str | None, message: str) -> list[Any]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ContractError(message) from exc
    if isinstance(raw, Mapping):
        raw = raw.get(key, raw.get(fallback) if fallback else None)
        if raw is None:
            return []
    if not isinstance(raw, list):
        raise ContractError(message)
    return raw


def parse_mounts(raw: Any, *, strategy: str, registry: Mapping[str, Definition]) -> list[Mount]:
    """The `strategy_plugins` mounts of one instance whose strategy key is `strategy`.

    The contract's shape is accepted unchanged (`signal_path`/`latest_signal_path`/`path` are
    ignored: artifacts are pushed to Stratbox). A mount's `strategy`, when given, must be the
    instance's strategy (the contract would silently skip it; a mount that never loads is a mistake).
    """
    items = _mount_items(
        raw,
        key="strategy_plugins",
        fallback="plugins",
        message="strategy plugin mount config must be a JSON list or object with strategy_plugins",
    )
    mounts: list[Mount] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, Mapping):
            raise ContractError("each strategy plugin mount must be an object")
        if _has_key(item, "mode"):
            raise ContractError(
                "platform plugin mount config must not set mode; read mode from the plugin artifact"
            )
        mount_strategy = _optional(item.get("strategy")) or strategy
        plugin = _required(item.get("plugin"), "plugin")
        if mount_strategy != strategy:
            raise ContractError(
                f"strategy plugin mount strategy mismatch: expected {strategy}, got {mount_strategy}"
            )
        key = (mount_strategy, plugin)
        if key in seen:
            raise ContractError(f"duplicate strategy plugin mount: strategy={mount_strategy} plugin={plugin}")
        seen.add(key)
        mounts.append(_mount(item, plugin, registry, strategy=mount_strategy, source="mount"))
    return mounts


def parse_targets(raw: Any, *, registry: Mapping[str, Definition]) -> list[Mount]:
    """A tenant's `notification_targets` mounts (general notification artifacts, no strategy)."""
    items = _mount_items(
        raw,
        key="notification_targets",
        fallback=None,
        message="strategy plugin notification target config must be a JSON list or object with notification_targets",
    )
    mounts: list[Mount] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        if not isinstance(item, Mapping):
            raise ContractError("each strategy plugin notification target must be an object")
        if _has_key(item, "mode"):
            raise ContractError(
                "notification target config must not set mode; read mode from the plugin artifact"
            )
        target = _required(item.get("notification_target"), "notification_target")
        plugin = _required(item.get("plugin"), "plugin")
        if (target, plugin) in seen:
            raise ContractError(
                f"duplicate strategy plugin notification target: notification_target={target} plugin={plugin}"
            )
        seen.add((target, plugin))
        mounts.append(_mount(item, plugin, registry, target=target, source="notification target"))
    return mounts


def _mount(
    item: Mapping[str, Any],
    plugin: str,
    registry: Mapping[str, Definition],
    *,
    strategy: str = "",
    target: str = "",
    source: str,
) -> Mount:
    definition = definition_for(plugin, registry)
    if strategy:
        check_strategy(definition, strategy, "mount")
    else:
        check_target(definition, target, source)
    expected_mode = ""
    if item.get("expected_mode") not in (None, ""):
        expected_mode = _mode(item.get("expected_mode"), "expected_mode")
        check_mode(definition, expected_mode, source if not strategy else "mount")
    expected_schema = _optional(item.get("expected_schema_version"))
    if expected_schema:
        check_schema(definition, expected_schema, "mount" if strategy else source)
    return Mount(
        plugin=plugin,
        strategy=strategy,
        notification_target=target,
        enabled=as_bool(item.get("enabled"), default=True),
        expected_mode=expected_mode,
        expected_schema_version=expected_schema,
    )
