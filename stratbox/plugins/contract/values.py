"""The contract's vocabulary and values: modes, routes, `Definition`, `Mount`, `Signal`, and the
small helpers every check shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SHADOW = "shadow"
SUPPORTED_MODES = (SHADOW,)
TRUTHY = {"1", "true", "yes", "y", "on"}
STRATEGY = "strategy"
NOTIFICATION_TARGET = "notification_target"
STALE_REASON = "artifact:stale"
BLOCKED = "blocked"
# The machine fields a run report carries for each signal (display text never drives logic).
REPORT_FIELDS = ("schema_version", "canonical_route", "suggested_action", "reason_codes", "position_control")
LOCALES = ("en-US", "zh-CN")


class ContractError(ValueError):
    """A fail-closed refusal; `str()` is the contract's message."""


@dataclass(frozen=True)
class Definition:
    plugin: str
    supported_strategies: frozenset[str]
    supported_modes: tuple[str, ...] = SUPPORTED_MODES
    supported_schema_versions: tuple[str, ...] = ()
    default_schema_version: str = ""
    supported_notification_targets: frozenset[str] = frozenset()
    deprecated: bool = False
    successor_plugin: str = ""
    alert_channels: tuple[str, ...] = ()
    max_artifact_age_hours: int = 0


@dataclass(frozen=True)
class Mount:
    plugin: str
    strategy: str = ""
    notification_target: str = ""
    enabled: bool = True
    expected_mode: str = ""
    expected_schema_version: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plugin": self.plugin, "enabled": self.enabled}
        if self.strategy:
            out = {"strategy": self.strategy, **out}
        if self.notification_target:
            out = {"notification_target": self.notification_target, **out}
        if self.expected_mode:
            out["expected_mode"] = self.expected_mode
        if self.expected_schema_version:
            out["expected_schema_version"] = self.expected_schema_version
        return out


@dataclass
class Signal:
    """A validated artifact, reduced to the machine fields the platform acts on."""

    target_type: str
    target: str
    plugin: str
    mode: str
    configured_mode: str
    effective_mode: str
    schema_version: str
    as_of: str
    generated_at: str
    canonical_route: str
    suggested_action: str
    would_trade_if_enabled: bool
    execution_controls: dict[str, Any]
    reason_codes: list[str]
    payload: dict[str, Any] = field(repr=False)
    stale: bool = False

    @property
    def strategy(self) -> str:
        return self.target if self.target_type == STRATEGY else ""

    @property
    def notification_target(self) -> str:
        return self.target if self.target_type == NOTIFICATION_TARGET else ""

    @property
    def runtime_metadata_allowed(self) -> bool:
        return self.target_type == STRATEGY and as_bool(
            self.execution_controls.get("strategy_runtime_metadata_allowed")
        )


def as_bool(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in TRUTHY


def _optional(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _required(value: Any, field_name: str) -> str:
    text = _optional(value)
    if not text:
        raise ContractError(f"{field_name} is required")
    return text


def _mode(value: Any, field_name: str) -> str:
    mode = _optional(value).lower()
    if mode not in SUPPORTED_MODES:
        raise ContractError(
            f"{field_name} must be one of {', '.join(SUPPORTED_MODES)}; got {_optional(value)!r}"
        )
    return mode


def _has_key(value: Any, key: str, depth: int = 0) -> bool:
    """`key` anywhere in a nested object (the platform must not set the mode at any depth)."""
    if depth > 100:
        raise ContractError("strategy plugin mount config is nested too deeply")
    if isinstance(value, Mapping):
        return key in value or any(_has_key(v, key, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_has_key(v, key, depth + 1) for v in value)
    return False
