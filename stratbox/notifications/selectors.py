"""Reads for notifications; every selector takes the tenant."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet

from stratbox.notifications.models import Channel, Delivery, NotificationEvent, Subscription
from tenants.models import Tenant


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def channel_list(*, tenant: Tenant) -> QuerySet[Channel]:
    return Channel.objects.filter(tenant=tenant).order_by("name", "created_at")


def channel_get(*, tenant: Tenant, channel_id: Any) -> Channel | None:
    pk = _uuid(channel_id)
    return Channel.objects.filter(tenant=tenant, pk=pk).first() if pk else None


def subscription_list(*, tenant: Tenant, instance_id: Any = None) -> QuerySet[Subscription]:
    qs = Subscription.objects.filter(tenant=tenant).select_related("channel")
    if instance_id is not None:
        qs = qs.filter(instance_id=instance_id)
    return qs.order_by("event_type", "channel__name")


def delivery_list(*, tenant: Tenant, channel_id: Any = None, event_id: Any = None) -> QuerySet[Delivery]:
    qs = Delivery.objects.filter(tenant=tenant).select_related("channel", "event")
    if channel_id is not None:
        pk = _uuid(channel_id)
        qs = qs.filter(channel_id=pk) if pk else qs.none()
    if event_id is not None:
        qs = qs.filter(event_id=event_id) if str(event_id).isdigit() else qs.none()
    return qs.order_by("-created_at", "-id")


def inbox_list(*, tenant: Tenant, unread: bool = False) -> QuerySet[NotificationEvent]:
    qs = NotificationEvent.objects.filter(tenant=tenant)
    if unread:
        qs = qs.filter(read_at__isnull=True)
    return qs.order_by("-created_at", "-id")


def inbox_unread_count(*, tenant: Tenant) -> int:
    return NotificationEvent.objects.filter(tenant=tenant, read_at__isnull=True).count()
