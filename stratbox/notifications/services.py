"""Writes for notifications: channels, subscriptions, events and their deliveries.

Flow: a service elsewhere calls `event_emit` inside its transaction; after commit the event is
pushed to the tenant's websocket (the inbox) and `deliver_event_task` is enqueued. Delivery
resolves each channel's level (instance subscription, else tenant default, else the built-in
default) and makes one attempt per channel (`delivery_attempt`), each recorded as a `Delivery`
row: disabled, quiet hours (kept for the digest), rate limited (token bucket on the channel row),
duplicate (the marker of `(channel, key)` exists) or sent/failed. The marker is inserted in the
same transaction as the sent delivery's row, and a concurrent attempt with the same key waits on
the unique index and then sees it: one delivery per key per channel. A failed attempt is retried
by Celery with exponential backoff; after `failure_limit` consecutive failures the channel is
disabled and the tenant gets an in-app notice.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.notifications import channels as channel_io
from stratbox.notifications.models import (
    Channel,
    ChannelStatus,
    Delivery,
    DeliveryMarker,
    DeliveryStatus,
    EventType,
    Level,
    NotificationEvent,
    NotificationSettings,
    Severity,
    SkipReason,
    Subscription,
)
from stratbox.notifications.profile import profile_changed
from stratbox.trading.credentials import credentials_decrypt, credentials_encrypt
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (5, 30, 120)
# Built-in defaults when neither the instance nor the tenant chose a level (fills are noisy: off).
DEFAULT_LEVELS = {EventType.ORDER_FILLED: Level.OFF}
# Events every channel of the tenant hears regardless of subscriptions.
ALWAYS = {EventType.TEST, EventType.DIGEST}


class NotificationError(ApplicationError):
    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        # A 400 naming `field` ("non_field_errors" when none), in the standard body.
        super().__init__(code, message, field or "non_field_errors")


def tenant_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}"


def settings_for(tenant: Tenant | Any) -> NotificationSettings:
    """The tenant's settings, or the defaults (unsaved: reading never writes)."""
    tenant_id = getattr(tenant, "pk", tenant)
    return NotificationSettings.objects.filter(tenant_id=tenant_id).first() or NotificationSettings(
        tenant_id=tenant_id
    )


@transaction.atomic
def settings_update(*, tenant: Tenant, actor: Any, **fields: Any) -> NotificationSettings:
    NotificationSettings.objects.get_or_create(tenant=tenant)
    found = NotificationSettings.objects.select_for_update().get(tenant=tenant)
    if "timezone" in fields:
        try:
            ZoneInfo(fields["timezone"])
        except Exception as exc:
            raise NotificationError("unknown time zone", code="INVALID_TIMEZONE", field="timezone") from exc
    before = {k: str(getattr(found, k)) for k in fields}
    for key, value in fields.items():
        setattr(found, key, value)
    found.save()
    profile_changed(tenant.pk)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="notifications.settings",
        target=found,
        before=before,
        after={k: str(v) for k, v in fields.items()},
    )
    return found


# --- channels ---------------------------------------------------------------------------------------


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


# --- subscriptions ----------------------------------------------------------------------------------


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


# --- events -----------------------------------------------------------------------------------------


def event_emit(
    *,
    tenant: Tenant | Any,
    event_type: str,
    title: str,
    body: str,
    dedup_key: str,
    instance: StrategyInstance | None = None,
    severity: str = Severity.INFO,
    payload: dict[str, Any] | None = None,
    only_channel: Channel | None = None,
    locale: str = "",
) -> NotificationEvent:
    """Record an event (the inbox item); after commit it is pushed to the tenant and delivered."""
    tenant_id = getattr(tenant, "pk", tenant)
    event = NotificationEvent.objects.create(
        tenant_id=tenant_id,
        instance=instance,
        event_type=event_type,
        severity=severity,
        dedup_key=dedup_key[:400],
        locale=locale or settings_for(tenant_id).locale,
        title=title[:300],
        body=body,
        payload=payload or {},
        only_channel=only_channel,
    )
    transaction.on_commit(lambda: _after_commit(event))
    return event


def _after_commit(event: NotificationEvent) -> None:
    inbox_push(event)
    from stratbox.notifications.tasks import deliver_event_task

    try:
        deliver_event_task.delay(event.pk)
    except Exception:  # the broker is down: the sweep (`event_redeliver_pending`) picks it up
        logger.warning("could not enqueue delivery of event %s", event.pk, exc_info=True)


def inbox_message(event: NotificationEvent) -> dict[str, Any]:
    return {
        "type": "notification.event",
        "id": event.pk,
        "event_type": event.event_type,
        "event_type_label": str(event.get_event_type_display()),
        "severity": event.severity,
        "title": event.title,
        "body": event.body,
        "instance_id": str(event.instance_id) if event.instance_id else None,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }


def inbox_push(event: NotificationEvent) -> None:
    """Push the event to the tenant's websocket group (the in-app inbox); losing it loses nothing."""
    try:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(tenant_group(event.tenant_id), inbox_message(event))
    except Exception:
        logger.warning("inbox push of event %s failed", event.pk, exc_info=True)


@transaction.atomic
def inbox_mark_read(*, tenant: Tenant, event_ids: list[int] | None = None) -> int:
    qs = NotificationEvent.objects.filter(tenant=tenant, read_at__isnull=True)
    if event_ids is not None:
        qs = qs.filter(pk__in=event_ids)
    return qs.update(read_at=timezone.now())


# --- delivery ---------------------------------------------------------------------------------------


def event_deliver(*, event_id: int) -> list[tuple[str, int]]:
    """Fan an event out to its channels: (channel id, attempt to enqueue) for each failed first try."""
    event = NotificationEvent.objects.filter(pk=event_id).first()
    if event is None:
        return []
    chans = (
        [event.only_channel]
        if event.only_channel_id
        else list(Channel.objects.filter(tenant_id=event.tenant_id).order_by("created_at"))
    )
    subs = list(Subscription.objects.filter(tenant_id=event.tenant_id, event_type=event.event_type))
    retries: list[tuple[str, int]] = []
    for channel in chans:
        if channel is None:
            continue
        level = level_for(event=event, channel=channel, subs=subs)
        if level == Level.OFF:
            continue
        if Delivery.objects.filter(event=event, channel=channel).exists():
            continue  # a redelivered task: this channel was handled (retries are their own tasks)
        delivery = delivery_attempt(event_id=event.pk, channel_id=str(channel.pk), attempt=1)
        if delivery is not None and delivery.status == DeliveryStatus.FAILED:
            retries.append((str(channel.pk), 2))
    return retries


def _in_quiet_hours(cfg: NotificationSettings, now: datetime) -> bool:
    if cfg.quiet_start is None or cfg.quiet_end is None or cfg.quiet_start == cfg.quiet_end:
        return False
    try:
        local = now.astimezone(ZoneInfo(cfg.timezone)).time()
    except Exception:
        local = now.time()
    if cfg.quiet_start < cfg.quiet_end:
        return cfg.quiet_start <= local < cfg.quiet_end
    return local >= cfg.quiet_start or local < cfg.quiet_end


def _take_token(channel: Channel, cfg: NotificationSettings, now: datetime) -> bool:
    """Token bucket on the (locked) channel row: `rate_per_hour` an hour, bursts of `rate_burst`."""
    burst = max(cfg.rate_burst, 1)
    tokens = burst if channel.tokens is None else channel.tokens
    if channel.tokens_at is not None:
        tokens = min(burst, tokens + (now - channel.tokens_at).total_seconds() * cfg.rate_per_hour / 3600.0)
    channel.tokens_at = now
    if tokens < 1:
        channel.tokens = tokens
        return False
    channel.tokens = tokens - 1
    return True


def _message(event: NotificationEvent, channel: Channel) -> tuple[str, str]:
    """Title and body as sent: webhooks get the same JSON for every event (and it is signed)."""
    if channel.kind != "webhook":
        return event.title, event.body
    return event.title, json.dumps(
        {
            "id": event.pk,
            "event_type": event.event_type,
            "severity": event.severity,
            "tenant_id": str(event.tenant_id),
            "instance_id": str(event.instance_id) if event.instance_id else None,
            "locale": event.locale,
            "title": event.title,
            "body": event.body,
            "payload": event.payload,
            "created_at": event.created_at.isoformat(),
        },
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )


def _record(event: NotificationEvent, channel: Channel, attempt: int, **fields: Any) -> Delivery:
    return Delivery.objects.create(
        tenant_id=event.tenant_id,
        event=event,
        channel=channel,
        attempt=attempt,
        target_redacted=channel.url_redacted,
        **fields,
    )


def marker_key(event: NotificationEvent, channel: Channel) -> str:
    """The de-duplication key on this channel: a plugin alert's is the contract's per-channel alert
    key (carried in the payload); any other event's is its type and natural key."""
    keys = event.payload.get("alert_keys") if isinstance(event.payload, dict) else None
    if isinstance(keys, dict) and isinstance(keys.get(channel.kind), str):
        return keys[channel.kind][:500]
    return f"{event.event_type}/{event.dedup_key}"[:500]


def delivery_attempt(
    *, event_id: int, channel_id: str, attempt: int, now: datetime | None = None
) -> Delivery | None:
    """One attempt of one event on one channel: exactly one `Delivery` row (None if either is gone)."""
    now = now or timezone.now()
    event = NotificationEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None
    cfg = settings_for(event.tenant_id)
    failure: channel_io.SendResult | None = None
    with transaction.atomic():
        channel = Channel.objects.select_for_update().filter(pk=channel_id, tenant_id=event.tenant_id).first()
        if channel is None:
            return None
        key = marker_key(event, channel)
        if channel.status == ChannelStatus.DISABLED and event.event_type != EventType.TEST:
            return _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SKIPPED,
                reason=SkipReason.DISABLED,
                dedup_key=key,
            )
        if DeliveryMarker.objects.filter(channel=channel, key=key).exists():
            return _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SKIPPED,
                reason=SkipReason.DUPLICATE,
                dedup_key=key,
            )
        if (
            event.event_type not in ALWAYS
            and event.severity != Severity.CRITICAL
            and _in_quiet_hours(cfg, now)
        ):
            return _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SKIPPED,
                reason=SkipReason.QUIET_HOURS,
                dedup_key=key,
                digest_pending=True,
            )
        if event.event_type not in ALWAYS and not _take_token(channel, cfg, now):
            channel.save(update_fields=["tokens", "tokens_at"])
            return _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SKIPPED,
                reason=SkipReason.RATE_LIMITED,
                dedup_key=key,
            )
        try:
            url = credentials_decrypt(channel.url_ciphertext)["url"]
            secret = (
                credentials_decrypt(channel.secret_ciphertext)["secret"] if channel.secret_ciphertext else ""
            )
        except Exception as exc:
            channel.save(update_fields=["tokens", "tokens_at"])
            return _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SKIPPED,
                reason=SkipReason.MISSING_CONFIG,
                error=f"{type(exc).__name__}: {exc}"[:500],
                dedup_key=key,
            )
        title, body = _message(event, channel)
        # The channel row stays locked while sending: a concurrent attempt of the same key waits
        # here and then finds the marker, so a key is sent once per channel.
        result = channel_io.send(
            url=url,
            title=title,
            body=body,
            event_type=event.event_type,
            severity=event.severity,
            secret=secret,
            silent=_silent(event, channel),
        )
        if result.ok:
            delivery = _record(
                event,
                channel,
                attempt,
                status=DeliveryStatus.SENT,
                latency_ms=result.latency_ms,
                dedup_key=key,
            )
            try:
                with transaction.atomic():
                    DeliveryMarker.objects.create(channel=channel, key=key, delivery=delivery)
            except IntegrityError:  # cannot happen under the row lock; kept as the last guard
                logger.error("duplicate delivery marker %s on %s", key, channel.pk)
            channel.status = ChannelStatus.VERIFIED
            channel.consecutive_failures = 0
            channel.last_error = ""
            channel.save(
                update_fields=["status", "consecutive_failures", "last_error", "tokens", "tokens_at"]
            )
            return delivery
        failure = result
        delivery = _record(
            event,
            channel,
            attempt,
            status=DeliveryStatus.FAILED,
            error=result.error,
            latency_ms=result.latency_ms,
            dedup_key=key,
        )
        channel.consecutive_failures += 1
        channel.last_error = result.error[:500]
        disabled = (
            channel.consecutive_failures >= max(cfg.failure_limit, 1)
            and channel.status != ChannelStatus.DISABLED
        )
        channel.status = ChannelStatus.DISABLED if disabled else ChannelStatus.FAILING
        channel.save(update_fields=["status", "consecutive_failures", "last_error", "tokens", "tokens_at"])
        if disabled:
            _notice_disabled(channel)
    if failure is not None:
        logger.info("delivery of event %s on %s failed: %s", event_id, channel_id, failure.error)
    return delivery


def _silent(event: NotificationEvent, channel: Channel) -> bool:
    return (
        Subscription.objects.filter(channel=channel, event_type=event.event_type, level=Level.SILENT)
        .filter(instance_id__in=[event.instance_id, None])
        .exists()
    )


def _notice_disabled(channel: Channel) -> None:
    """The owner's notice: an in-app event (never delivered to the channel that just failed)."""
    locale = settings_for(channel.tenant_id).locale
    title = {"zh-CN": f"通知渠道“{channel.name}”已停用"}.get(locale, f"Channel '{channel.name}' was disabled")
    body = {"zh-CN": f"连续 {channel.consecutive_failures} 次发送失败：{channel.last_error}"}.get(
        locale, f"{channel.consecutive_failures} consecutive deliveries failed: {channel.last_error}"
    )
    event_emit(
        tenant=channel.tenant_id,
        event_type=EventType.CHANNEL_DISABLED,
        severity=Severity.WARNING,
        title=title,
        body=body,
        dedup_key=f"channel_disabled/{channel.pk}/{timezone.now().isoformat()}",
        payload={"channel_id": str(channel.pk)},
    )


def retry_delay(attempt: int) -> int | None:
    """Seconds before `attempt` (2, 3, …), or None when no attempt is left."""
    if attempt > MAX_ATTEMPTS:
        return None
    return BACKOFF_SECONDS[min(attempt - 2, len(BACKOFF_SECONDS) - 1)]


def digest_flush(*, now: datetime | None = None) -> int:
    """After quiet hours, send each channel one digest of what was held; returns digests sent."""
    now = now or timezone.now()
    sent = 0
    channel_ids = Delivery.objects.filter(digest_pending=True).values_list("channel_id", flat=True).distinct()
    for channel_id in list(channel_ids):
        channel = Channel.objects.filter(pk=channel_id).first()
        if channel is None:
            continue
        cfg = settings_for(channel.tenant_id)
        if _in_quiet_hours(cfg, now):
            continue
        with transaction.atomic():
            held = list(
                Delivery.objects.select_for_update(skip_locked=True)
                .filter(channel=channel, digest_pending=True)
                .select_related("event")
                .order_by("created_at")
            )
            if not held:
                continue
            Delivery.objects.filter(pk__in=[d.pk for d in held]).update(digest_pending=False)
            title = {"zh-CN": f"Stratbox 摘要：{len(held)} 条通知"}.get(
                cfg.locale, f"Stratbox digest: {len(held)} notifications"
            )
            body = "\n".join(f"- {d.event.title}" for d in held)
            event_emit(
                tenant=channel.tenant_id,
                event_type=EventType.DIGEST,  # this channel only, outside quiet hours and limits
                title=title,
                body=body,
                dedup_key=f"digest/{channel.pk}/{now.isoformat()}",
                only_channel=channel,
                payload={"digest_of": [d.event_id for d in held]},
            )
            sent += 1
    return sent


def deliveries_prune(*, older_than_days: int = 90) -> int:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return Delivery.objects.filter(created_at__lt=cutoff).delete()[0]
