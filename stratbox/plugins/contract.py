"""The sidecar strategy-plugin contract (seed 003), as pure functions over plain data.

No database and no Django here: the services read the registry rows into `Definition` values and
call these functions, so every fail-closed rule lives once and is tested directly. Error texts are
the contract's own (docs/plugins.md lists them), so a mount config or an artifact that a
`quant_platform_kit` runtime accepts loads unchanged and one it rejects is rejected with the same
words. Stratbox is stricter in three places: an unknown plugin is refused, a missing
`schema_version` is refused, and an artifact older than the definition's maximum age is *stale*
(route `blocked`, reason `artifact:stale`, which always escalates).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


# --- small helpers ------------------------------------------------------------------------------


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


# --- registry checks ------------------------------------------------------------------------------


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


# --- mounts -------------------------------------------------------------------------------------


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


# --- artifacts ------------------------------------------------------------------------------------


def load_json(raw: bytes | str) -> Any:
    """Parse an uploaded artifact; invalid JSON is refused with the decoder's own message."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ContractError(f"{type(exc).__name__}: {exc}") from exc
    except RecursionError as exc:
        raise ContractError("strategy plugin signal is nested too deeply") from exc
    if _has_nul(value):  # PostgreSQL text and jsonb cannot hold NUL
        raise ContractError("strategy plugin signal must not contain NUL characters")
    return value


def _has_nul(value: Any, depth: int = 0) -> bool:
    if depth > 200:
        raise ContractError("strategy plugin signal is nested too deeply")
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def canonical_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def validate_artifact(payload: Any, *, mount: Mount, registry: Mapping[str, Definition]) -> Signal:
    """Validate one artifact against the mount it was pushed to; the contract's checks, fail-closed."""
    if not isinstance(payload, Mapping):
        raise ContractError("strategy plugin signal must be a JSON object")
    raw_type = _optional(payload.get("target_type"))
    target_type = raw_type or (
        NOTIFICATION_TARGET if _optional(payload.get("notification_target")) else STRATEGY
    )
    if target_type not in (STRATEGY, NOTIFICATION_TARGET):
        raise ContractError(
            f"strategy plugin signal target_type must be strategy or notification_target; got {raw_type!r}"
        )
    if target_type == STRATEGY:
        target = _required(payload.get("strategy"), "strategy")
    else:
        target = _required(payload.get("notification_target"), "notification_target")
    plugin = _required(payload.get("plugin"), "plugin")
    mode = _mode(payload.get("mode"), "mode")
    configured_mode = _mode(payload.get("configured_mode", mode), "configured_mode")
    effective_mode = _mode(payload.get("effective_mode", mode), "effective_mode")
    if mount.expected_mode and mount.expected_mode != effective_mode:
        raise ContractError(
            f"strategy plugin artifact mode mismatch: expected {mount.expected_mode}, got {effective_mode}"
        )
    # Identity against the mount.
    if mount.strategy and target_type != STRATEGY:
        raise ContractError(
            f"strategy plugin artifact target mismatch: expected strategy {mount.strategy}, got notification target {target}"
        )
    if mount.notification_target and target_type != NOTIFICATION_TARGET:
        raise ContractError(
            f"strategy plugin artifact target mismatch: expected notification target {mount.notification_target}, "
            f"got strategy {target}"
        )
    if mount.strategy and target != mount.strategy:
        raise ContractError(
            f"strategy plugin artifact strategy mismatch: expected {mount.strategy}, got {target}"
        )
    if mount.notification_target and target != mount.notification_target:
        raise ContractError(
            f"strategy plugin artifact notification_target mismatch: expected {mount.notification_target}, got {target}"
        )
    if plugin != mount.plugin:
        raise ContractError(
            f"strategy plugin artifact plugin mismatch: expected {mount.plugin}, got {plugin}"
        )
    definition = definition_for(plugin, registry)
    if target_type == STRATEGY:
        check_strategy(definition, target, "artifact")
    else:
        check_target(definition, target, "artifact")
    check_mode(definition, effective_mode, "artifact")
    schema_version = _optional(payload.get("schema_version"))
    if mount.expected_schema_version and schema_version != mount.expected_schema_version:
        raise ContractError(
            "strategy plugin artifact schema_version mismatch: "
            f"expected {mount.expected_schema_version}, got {schema_version or '<missing>'}"
        )
    if not schema_version:  # stricter than the contract, which accepts a missing schema_version
        raise ContractError("schema_version is required")
    check_schema(definition, schema_version, "artifact")
    controls = payload.get("execution_controls", {})
    if controls is None:
        controls = {}
    if not isinstance(controls, Mapping):
        raise ContractError("strategy plugin signal execution_controls must be an object")
    return Signal(
        target_type=target_type,
        target=target,
        plugin=plugin,
        mode=mode,
        configured_mode=configured_mode,
        effective_mode=effective_mode,
        schema_version=schema_version,
        as_of=_optional(payload.get("as_of")),
        generated_at=_optional(payload.get("generated_at")),
        canonical_route=_optional(payload.get("canonical_route")),
        suggested_action=_optional(payload.get("suggested_action")),
        would_trade_if_enabled=as_bool(payload.get("would_trade_if_enabled")),
        execution_controls=dict(controls),
        reason_codes=reason_codes(payload),
        payload=dict(payload),
    )


def reason_codes(payload: Mapping[str, Any]) -> list[str]:
    """Machine reason codes: top-level, else the log record's, else position control's."""
    for source in (
        payload,
        payload.get("log_record"),
        payload.get("position_control"),
        payload.get("arbiter"),
    ):
        if isinstance(source, Mapping) and isinstance(source.get("reason_codes"), list):
            return [str(code) for code in source["reason_codes"] if isinstance(code, str | int | float)][:50]
    return []


# --- staleness (stricter than the contract: the loader there trusts a stopped pipeline's file) ----


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            return None
        # A signal date counts as produced at the end of that day.
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def signal_produced_at(signal: Signal) -> datetime | None:
    """When the pipeline produced it: `generated_at`, else the end of the `as_of` day."""
    return _parse_time(signal.generated_at) or _parse_time(signal.as_of)


def is_stale(signal: Signal, definition: Definition, now: datetime) -> bool:
    """Older than the definition's maximum age (0 = no limit); an undatable artifact is stale."""
    if definition.max_artifact_age_hours <= 0:
        return False
    produced = signal_produced_at(signal)
    return produced is None or now - produced > timedelta(hours=definition.max_artifact_age_hours)


def mark_stale(signal: Signal) -> Signal:
    """The route a stale artifact takes: blocked, with the reason `artifact:stale`."""
    signal.stale = True
    signal.canonical_route = BLOCKED
    signal.suggested_action = BLOCKED
    if STALE_REASON not in signal.reason_codes:
        signal.reason_codes = [STALE_REASON, *signal.reason_codes]
    return signal


# --- escalation and alert keys ---------------------------------------------------------------------


def should_alert(signal: Signal) -> bool:
    """The contract's rule: route is not `no_action`, or action `defend`/`blocked`, or would trade.

    Missing route/action normalise to `unknown`, which escalates (fail towards telling a human).
    """
    route = signal.canonical_route.strip().lower() or "unknown"
    action = signal.suggested_action.strip().lower() or "unknown"
    return signal.would_trade_if_enabled or route != "no_action" or action in {"defend", "blocked"}


def _key_part(value: Any) -> str:
    text = str(value or "").strip().lower()
    out: list[str] = []
    for char in text:
        if char.isalnum() or char in "_.":
            out.append(char)
        elif not out or out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-._")[:80] or "unknown"


def alert_namespace(channel_kind: str) -> str:
    """The per-channel namespace (`strategy_plugin_alert` is the contract's e-mail namespace)."""
    return (
        "strategy_plugin_alert"
        if channel_kind in ("", "email")
        else f"strategy_plugin_{_key_part(channel_kind)}_alert"
    )


def alert_key(signal: Signal, *, context: str, namespace: str = "strategy_plugin_alert") -> str:
    """The contract's alert key: namespace/context/target/plugin/as_of/route/action/digest."""
    parts = {
        "namespace": _optional(namespace) or "strategy_plugin_alert",
        "context": _optional(context) or "default",
        "target_type": signal.target_type or STRATEGY,
        "target": signal.target or "unknown",
        "plugin": signal.plugin or "unknown",
        "mode": signal.effective_mode or "unknown",
        "as_of": signal.as_of or "unknown",
        "route": signal.canonical_route or "unknown",
        "action": signal.suggested_action or "unknown",
        "would_trade_if_enabled": bool(signal.would_trade_if_enabled),
    }
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]
    names = ("namespace", "context", "target", "plugin", "as_of", "route", "action")
    return "/".join([*(_key_part(parts[n]) for n in names), digest])


def context_label(*, tenant_id: Any, instance_id: Any = None) -> str:
    """Stratbox's alert context: platform / tenant / instance (the contract's context, made per tenant)."""
    return f"stratbox/{tenant_id}/{instance_id or 'tenant'}"


# --- rendering (display only) -------------------------------------------------------------------------

_LINE = {
    "en-US": "Plugin: {plugin} | status: {route} | notice: {action}",
    "zh-CN": "插件：{plugin} | 状态：{route} | 提示：{action}",
}
_ALERT = {
    "en-US": {
        "subject": "Strategy plugin alert: {plugin} | {route}",
        "title": "Strategy Plugin Alert",
        "context": "Context: {context}",
        "strategy": "Strategy: {target}",
        "notification_target": "Notification target: {target}",
        "plugin": "Plugin: {plugin}",
        "status": "Status: {route}",
        "notice": "Notice: {action}",
        "mode": "Mode: {mode}",
        "as_of": "Signal as-of: {as_of}",
        "reasons": "Reasons: {reasons}",
        "stale": "The artifact is older than the plugin's maximum age: treated as blocked.",
        "scope": "Scope: Manual review notice only; the plugin does not place orders or change allocations.",
    },
    "zh-CN": {
        "subject": "策略插件告警：{plugin} | {route}",
        "title": "策略插件告警",
        "context": "环境：{context}",
        "strategy": "策略：{target}",
        "notification_target": "通知对象：{target}",
        "plugin": "插件：{plugin}",
        "status": "状态：{route}",
        "notice": "提示：{action}",
        "mode": "模式：{mode}",
        "as_of": "信号日期：{as_of}",
        "reasons": "原因：{reasons}",
        "stale": "插件产物已超过最长有效期：按 blocked 处理。",
        "scope": "范围：仅供人工复核；插件不会下单，也不会修改仓位配置。",
    },
}


def locale_of(value: str) -> str:
    return value if value in LOCALES else "en-US"


def _localized(messages: Any, section: str, locale: str) -> str:
    if not isinstance(messages, Mapping):
        return ""
    texts = messages.get(section) if section else messages
    if not isinstance(texts, Mapping):
        return ""
    default = messages.get("default_locale") if isinstance(messages.get("default_locale"), str) else ""
    for key in (locale, default):
        text = texts.get(key) if key else None
        if isinstance(text, str) and text.strip():
            return text.strip()
    return ""


def notification_line(signal: Signal, locale: str) -> str:
    """The artifact's own localized notification text when it has one, else our template."""
    payload = signal.payload
    if not signal.stale:
        text = _localized(payload.get("localized_messages"), "notification", locale)
        notification = payload.get("notification")
        if not text and isinstance(notification, Mapping):
            text = _localized(notification.get("localized_messages"), "", locale)
        if text:
            return text
    return _LINE[locale_of(locale)].format(
        plugin=signal.plugin,
        route=signal.canonical_route or "unknown",
        action=signal.suggested_action or "unknown",
    )


def log_line(signal: Signal, locale: str) -> str:
    if not signal.stale:
        text = _localized(signal.payload.get("localized_messages"), "log", locale)
        if text:
            return text
    return notification_line(signal, locale)


def alert_message(signal: Signal, *, locale: str, context: str) -> tuple[str, str]:
    """Subject and body of an escalated alert, in `locale`; the machine fields stay in the payload."""
    t = _ALERT[locale_of(locale)]
    route = signal.canonical_route or "unknown"
    action = signal.suggested_action or "unknown"
    subject = f"[{context}] " + t["subject"].format(plugin=signal.plugin, route=route)
    lines = [
        t["title"],
        "",
        t["context"].format(context=context),
        t[signal.target_type].format(target=signal.target),
        t["plugin"].format(plugin=signal.plugin),
        t["status"].format(route=route),
        t["notice"].format(action=action),
        t["mode"].format(mode=signal.effective_mode),
        t["as_of"].format(as_of=signal.as_of or "unknown"),
    ]
    if signal.reason_codes:
        lines.append(t["reasons"].format(reasons=", ".join(signal.reason_codes)))
    if signal.stale:
        lines.append(t["stale"])
    localized = notification_line(signal, locale)
    if localized and not signal.stale:
        lines += ["", localized]
    lines += ["", t["scope"]]
    return subject, "\n".join(lines)


def report_section(signals: Iterable[Signal]) -> list[dict[str, Any]]:
    """The plugin section of a run report: machine fields only."""
    out = []
    for s in signals:
        position_control = s.payload.get("position_control")
        out.append(
            {
                "plugin": s.plugin,
                "target_type": s.target_type,
                "target": s.target,
                "mode": s.effective_mode,
                "as_of": s.as_of,
                "schema_version": s.schema_version,
                "canonical_route": s.canonical_route,
                "suggested_action": s.suggested_action,
                "reason_codes": list(s.reason_codes),
                "position_control": position_control if isinstance(position_control, Mapping) else None,
                "would_trade_if_enabled": s.would_trade_if_enabled,
                "stale": s.stale,
            }
        )
    return out
