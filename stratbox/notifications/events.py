"""Platform events → notification events: which audited actions notify, and their text per locale.

Machine fields (codes, reasons, ids) go to the event's payload unchanged; the title and body are
display text in the tenant's locale.
"""

from __future__ import annotations

from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.notifications.models import EventType, Severity
from stratbox.notifications.services import event_emit, settings_for

INSTANCE_TARGET = "instances.strategyinstance"

TEXT: dict[str, dict[str, tuple[str, str]]] = {
    EventType.INSTANCE_PAUSED: {
        "en-US": ("Instance {name} paused", "{name} was paused ({reason})."),
        "zh-CN": ("实例 {name} 已暂停", "{name} 已暂停（{reason}）。"),
    },
    EventType.INSTANCE_RESUMED: {
        "en-US": ("Instance {name} resumed", "{name} was resumed."),
        "zh-CN": ("实例 {name} 已恢复", "{name} 已恢复运行。"),
    },
    EventType.DAILY_LOSS_HIT: {
        "en-US": (
            "Daily-loss limit hit: {name}",
            "{name} reached its daily-loss limit and was paused (DAILY_LOSS_LIMIT).",
        ),
        "zh-CN": ("触及单日亏损上限：{name}", "{name} 触及单日亏损上限，已暂停（DAILY_LOSS_LIMIT）。"),
    },
    EventType.STRATEGY_ERROR: {
        "en-US": (
            "Circuit breaker: {name} paused",
            "{name} failed {failures} times in a row (last error {error}) and was paused (CIRCUIT_BREAKER).",
        ),
        "zh-CN": (
            "熔断：{name} 已暂停",
            "{name} 连续失败 {failures} 次（最后错误 {error}），已暂停（CIRCUIT_BREAKER）。",
        ),
    },
    EventType.KILL_SWITCH: {
        "en-US": ("Kill switch {state}", "The tenant's kill switch was turned {state} by {actor}."),
        "zh-CN": ("紧急停止已{state}", "{actor} {state}了租户的紧急停止开关。"),
    },
    EventType.MODE_CHANGED: {
        "en-US": ("Mode of {name}: {before} → {after}", "{actor} changed {name} from {before} to {after}."),
        "zh-CN": ("{name} 的模式：{before} → {after}", "{actor} 将 {name} 从 {before} 切换为 {after}。"),
    },
    EventType.LIVE_REQUEST_DECIDED: {
        "en-US": (
            "Live trading request {status}",
            "Staff ({actor}) {status} the live trading request. {reason}",
        ),
        "zh-CN": ("实盘申请已{status}", "管理员（{actor}）{status}了实盘交易申请。{reason}"),
    },
}
KILL_STATE = {"en-US": {"on": "on", "off": "off"}, "zh-CN": {"on": "开启", "off": "关闭"}}
DECISION = {
    "en-US": {"approve": "approved", "reject": "rejected", "revoke": "revoked"},
    "zh-CN": {"approve": "批准", "reject": "拒绝", "revoke": "撤销"},
}


def _instance(event: Any) -> StrategyInstance | None:
    if event.target_type != INSTANCE_TARGET or event.tenant_id is None:
        return None
    return StrategyInstance.objects.filter(tenant_id=event.tenant_id, pk=event.target_id).first()


def _render(event_type: str, locale: str, **values: Any) -> tuple[str, str]:
    texts = TEXT[event_type].get(locale) or TEXT[event_type]["en-US"]
    return texts[0].format(**values), texts[1].format(**values)


def from_audit(event: Any) -> None:
    """Emit the notification an audited action calls for (most actions call for none)."""
    action = event.action
    after = event.after if isinstance(event.after, dict) else {}
    before = event.before if isinstance(event.before, dict) else {}
    if event.tenant_id is None:
        return
    locale = settings_for(event.tenant_id).locale
    instance = _instance(event)
    name = instance.name if instance else ""
    payload: dict[str, Any] = {"audit_event": event.pk, "action": action}
    severity = Severity.INFO
    if action in ("instance.pause", "instance.auto_pause") and instance is not None:
        reason = str(after.get("reason") or "USER")
        payload["reason"] = reason
        if reason == "DAILY_LOSS_LIMIT":
            event_type, severity = EventType.DAILY_LOSS_HIT, Severity.CRITICAL
            title, body = _render(event_type, locale, name=name)
        elif reason == "CIRCUIT_BREAKER":
            event_type, severity = EventType.STRATEGY_ERROR, Severity.CRITICAL
            payload["last_error"] = after.get("last_error")
            title, body = _render(
                event_type,
                locale,
                name=name,
                failures=after.get("consecutive_failures", "?"),
                error=after.get("last_error") or "?",
            )
        else:
            event_type, severity = EventType.INSTANCE_PAUSED, Severity.WARNING
            title, body = _render(event_type, locale, name=name, reason=reason)
    elif action == "instance.resume" and instance is not None:
        event_type = EventType.INSTANCE_RESUMED
        title, body = _render(event_type, locale, name=name)
    elif action.startswith("tenant.kill_switch."):
        state = action.rsplit(".", 1)[1]
        event_type = EventType.KILL_SWITCH
        severity = Severity.CRITICAL if state == "on" else Severity.INFO
        payload["on"] = state == "on"
        title, body = _render(
            event_type,
            locale,
            state=KILL_STATE.get(locale, KILL_STATE["en-US"]).get(state, state),
            actor=event.actor_label,
        )
    elif action == "instance.mode" and instance is not None:
        event_type = EventType.MODE_CHANGED
        payload.update(before=before.get("mode"), after=after.get("mode"))
        title, body = _render(
            event_type,
            locale,
            name=name,
            before=before.get("mode"),
            after=after.get("mode"),
            actor=event.actor_label,
        )
    elif action in ("live_request.approve", "live_request.reject", "live_request.revoke"):
        decision = action.rsplit(".", 1)[1]
        event_type = EventType.LIVE_REQUEST_DECIDED
        severity = Severity.WARNING
        payload.update(decision=decision, request_id=event.target_id)
        reason = str(after.get("decision_reason") or after.get("revoke_reason") or "")
        title, body = _render(
            event_type,
            locale,
            status=DECISION.get(locale, DECISION["en-US"])[decision],
            actor=event.actor_label,
            reason=reason,
        )
        inst_id = after.get("instance") or after.get("instance_id")
        instance = (
            StrategyInstance.objects.filter(tenant_id=event.tenant_id, pk=inst_id).first()
            if inst_id
            else None
        )
    else:
        return
    event_emit(
        tenant=event.tenant_id,
        instance=instance,
        event_type=event_type,
        severity=severity,
        title=title,
        body=body.strip(),
        dedup_key=f"audit/{event.pk}",
        locale=locale,
        payload=payload,
    )
