"""Channels (create, enable, delete, test) and subscriptions: which level each event reaches a
channel at."""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction

from stratbox.instances.models import StrategyInstance
from stratbox.notifications import channels as channel_io
from stratbox.notifications.models import (
    Channel,
    ChannelStatus,
    EventType,
    Level,
    NotificationEvent,
    Subscription,
)
from stratbox.notifications.profile import profile_changed
from stratbox.notifications.services.inbox import event_emit
from stratbox.notifications.services.settings import NotificationError, settings_for
from stratbox.trading.credentials import credentials_encrypt
from tenants.models import Tenant
from tenants.services import audit_record

# Built-in defaults when neither the instance nor the tenant chose a level (fills are noisy: off).
DEFAULT_LEVELS = {EventType.ORDER_FILLED: Level.OFF}
# Events every channel of the tenant hears regardless of subscriptions.
ALWAYS = {EventType.TEST, EventType.DIGEST}


@transaction.atomic
def channel_create(*, tenant: Tenant, actor: Any, name: str, url: str) -> tuple[Channel, str]:
    """Store an apprise URL encrypted; returns the channel and (webhooks) its signing secret, shown once."""
    try:
        kind, redacted = channel_io.channel_check(url)
    except channel_io.ChannelUrlError as exc:
        raise NotificationError(str(exc), code="INVALID_CHANNEL_URL", field="url") from exc
    secret = secrets.token_urlsafe(32) if kind == "webhook" else ""
    channel = Channel.objects.create(
        tenant=tenant,
        name=name,
        kind=kind,
        url_ciphertext=credentials_encrypt({"url": url}),
        url_redacted=redacted,
        secret_ciphertext=credentials_encrypt({"secret": secret}) if secret else "",
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="notifications.channel.create",
        target=channel,
        after={"name": name, "kind": kind, "url": redacted},
    )
    return channel, secret


@transaction.atomic
def channel_set_enabled(*, channel: Channel, actor: Any, enabled: bool) -> Channel:
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    before = locked.status
    if enabled and locked.status == ChannelStatus.DISABLED:
        locked.status, locked.consecutive_failures = ChannelStatus.NEW, 0
    elif not enabled:
        locked.status = ChannelStatus.DISABLED
    locked.save(update_fields=["status", "consecutive_failures"])
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action="notifications.channel.update",
        target=locked,
        before={"status": before},
        after={"status": locked.status},
    )
    return locked


@transaction.atomic
def channel_delete(*, channel: Channel, actor: Any) -> None:
    audit_record(
        tenant=channel.tenant,
        actor=actor,
        action="notifications.channel.delete",
        target=channel,
        before={"name": channel.name, "url": channel.url_redacted},
    )
    channel.delete()
    profile_changed(channel.tenant_id)  # its subscriptions go with it


def channel_test(*, channel: Channel, actor: Any) -> NotificationEvent:
    """A Test send: an event for this channel only, delivered like any other (one delivery row)."""
    locale = settings_for(channel.tenant_id).locale
    title = {"zh-CN": "Stratbox 测试通知"}.get(locale, "Stratbox test notification")
    body = {"zh-CN": f"渠道“{channel.name}”可以接收 Stratbox 的通知。"}.get(
        locale, f"The channel '{channel.name}' can receive Stratbox notifications."
    )
    return event_emit(
        tenant=channel.tenant,
        event_type=EventType.TEST,
        title=title,
        body=body,
        dedup_key=f"test/{secrets.token_hex(8)}",
        only_channel=channel,
        payload={"channel_id": str(channel.pk), "requested_by": getattr(actor, "email", "")},
    )


@transaction.atomic
def subscription_set(
    *,
    tenant: Tenant,
    actor: Any,
    channel: Channel,
    event_type: str,
    level: str,
    instance: StrategyInstance | None = None,
) -> Subscription:
    if event_type not in EventType.values or event_type in (*ALWAYS, EventType.CHANNEL_DISABLED):
        raise NotificationError("unknown event type", code="INVALID_EVENT_TYPE", field="event_type")
    sub, _ = Subscription.objects.update_or_create(
        tenant=tenant, instance=instance, channel=channel, event_type=event_type, defaults={"level": level}
    )
    profile_changed(tenant.pk)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="notifications.subscription",
        target=sub,
        after={
            "channel": str(channel.pk),
            "event_type": event_type,
            "level": level,
            "instance": str(instance.pk) if instance else None,
        },
    )
    return sub


def level_for(*, event: NotificationEvent, channel: Channel, subs: list[Subscription]) -> str:
    if event.event_type in ALWAYS or event.only_channel_id is not None:
        return Level.ON
    mine = [s for s in subs if s.channel_id == channel.pk and s.event_type == event.event_type]
    for sub in mine:
        if event.instance_id is not None and sub.instance_id == event.instance_id:
            return sub.level
    for sub in mine:
        if sub.instance_id is None:
            return sub.level
    return DEFAULT_LEVELS.get(event.event_type, Level.ON)
