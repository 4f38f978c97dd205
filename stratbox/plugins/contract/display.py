"""Escalation, alert keys and display text (display only: text never drives logic)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from stratbox.plugins.contract.values import LOCALES, STRATEGY, Signal, _optional


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
