"""Delivery: one attempt per channel, recorded; quiet hours, rate limits, one delivery per key,
retries with backoff, the digest, pruning."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.utils import timezone

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
from stratbox.notifications.services.channels import ALWAYS, level_for
from stratbox.notifications.services.inbox import event_emit
from stratbox.notifications.services.settings import settings_for
from stratbox.trading.credentials import credentials_decrypt

logger = logging.getLogger(__name__)


MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (5, 30, 120)


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
