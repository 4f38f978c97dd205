"""Tell a tenant when a paper instance first meets its graduation criteria (`graduation_ready`).

Run by beat every few minutes over instances on paper accounts that are on: one notification per
instance and code version (the event's natural key), never again for the same version.
"""

from __future__ import annotations

from stratbox.governance.services import instance_graduation
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.notifications.models import EventType, NotificationEvent, Severity
from stratbox.notifications.services import event_emit, settings_for
from stratbox.trading.models import AccountKind

TEXT = {
    "en-US": (
        "{name} meets the graduation criteria",
        "{name} (v{version}) meets every graduation criterion on paper; you may request live trading.",
    ),
    "zh-CN": (
        "{name} 已满足毕业条件",
        "{name}（v{version}）的模拟盘记录已满足全部毕业条件，可以申请实盘交易。",
    ),
}


def graduation_notify_sweep() -> int:
    sent = 0
    instances = (
        StrategyInstance.objects.filter(account__kind=AccountKind.PAPER)
        .exclude(mode=Mode.OFF)
        .select_related("tenant", "account", "version")
    )
    for instance in instances:
        key = f"graduation/{instance.pk}/{instance.version_id}"
        if NotificationEvent.objects.filter(tenant_id=instance.tenant_id, dedup_key=key).exists():
            continue
        graduation = instance_graduation(instance)
        if not graduation["eligible"]:
            continue
        locale = settings_for(instance.tenant_id).locale
        title, body = TEXT.get(locale, TEXT["en-US"])
        values = {"name": instance.name, "version": instance.version.number}
        event_emit(
            tenant=instance.tenant_id,
            instance=instance,
            event_type=EventType.GRADUATION_READY,
            severity=Severity.INFO,
            title=title.format(**values),
            body=body.format(**values),
            dedup_key=key,
            locale=locale,
            payload={"criteria": graduation["criteria"], "record": graduation["record"]},
        )
        sent += 1
    return sent
