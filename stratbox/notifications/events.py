"""Platform events → notification events: which audited actions notify, and their text per locale.

Machine fields (codes, reasons, ids) go to the event's payload unchanged; the title and body are
display text in the tenant's locale.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.notifications.models import EventType, NotificationEvent, Severity
from stratbox.notifications.profile import profile_get
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


# --- from a tick: fills, rejections and denials, strategy messages ------------------------------------

STRATEGY_MSG_PER_HOUR = 20
TICK_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    EventType.ORDER_FILLED: {
        "en-US": ("{name}: {side} {qty} filled", "{name}: order {cid} ({side} {qty}) filled."),
        "zh-CN": ("{name}：{side} {qty} 已成交", "{name}：订单 {cid}（{side} {qty}）已成交。"),
    },
    EventType.ORDER_REJECTED: {
        "en-US": (
            "{name}: order {code}",
            "{name}: order {cid} ({side} {qty}) was refused: {code}. {message}",
        ),
        "zh-CN": ("{name}：订单 {code}", "{name}：订单 {cid}（{side} {qty}）被拒绝：{code}。{message}"),
    },
    EventType.STRATEGY_MSG: {
        "en-US": ("{name}: message from the strategy", "{text}"),
        "zh-CN": ("{name}：策略消息", "{text}"),
    },
}


def tick_notify(
    *, instance: StrategyInstance, actions: list[dict[str, Any]], logs: list[Any], slot: int
) -> None:
    """Notify what a tick did: fills, refused orders (with the deny code), and the strategy's
    `context.notify(text)` — at most one message per bar (the first) and STRATEGY_MSG_PER_HOUR an
    hour per instance. Called by the engine after the tick's commit; a quiet tick costs nothing."""
    notes = [line for line in logs if isinstance(line, dict) and line.get("level") == "notify"]
    interesting = [
        a for a in actions if a.get("kind") == "denied" or a.get("status") in ("filled", "rejected")
    ]
    if not notes and not interesting:
        return
    profile = profile_get(instance.tenant_id)
    locale = profile.locale
    for action in interesting:
        filled = action.get("status") == "filled" and action.get("kind") == "order"
        if action.get("kind") == "shadow":
            continue
        event_type = EventType.ORDER_FILLED if filled else EventType.ORDER_REJECTED
        if filled and not profile.wants_fills(instance.pk):
            continue  # fills are off unless subscribed: no inbox row per fill either
        code = str(action.get("deny_code") or action.get("status") or "REJECTED")
        values = {
            "name": instance.name,
            "side": action.get("side"),
            "qty": action.get("qty"),
            "cid": action.get("client_order_id"),
            "code": code,
            "message": action.get("message") or "",
        }
        texts = TICK_TEXT[event_type].get(locale) or TICK_TEXT[event_type]["en-US"]
        event_emit(
            tenant=instance.tenant_id,
            instance=instance,
            event_type=event_type,
            severity=Severity.INFO if filled else Severity.WARNING,
            title=texts[0].format(**values),
            body=texts[1].format(**values).strip(),
            dedup_key=f"{instance.pk}/{action.get('client_order_id')}/{code}",
            locale=locale,
            payload={
                k: action.get(k)
                for k in ("client_order_id", "side", "qty", "status", "deny_code", "order_id")
            },
        )
    if notes:
        recent = NotificationEvent.objects.filter(
            instance=instance,
            event_type=EventType.STRATEGY_MSG,
            created_at__gte=timezone.now() - timedelta(hours=1),
        ).count()
        if recent >= STRATEGY_MSG_PER_HOUR:
            return
        text = str(notes[0].get("msg") or "")[:1000]
        texts = TICK_TEXT[EventType.STRATEGY_MSG].get(locale) or TICK_TEXT[EventType.STRATEGY_MSG]["en-US"]
        event_emit(
            tenant=instance.tenant_id,
            instance=instance,
            event_type=EventType.STRATEGY_MSG,
            title=texts[0].format(name=instance.name),
            body=texts[1].format(text=text),
            dedup_key=f"{instance.pk}/bar/{slot}",
            locale=locale,
            payload={"text": text, "slot": slot},
        )
