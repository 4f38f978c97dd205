"""Events: emitted inside a service's transaction, pushed to the tenant's inbox after commit."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from stratbox.instances.models import StrategyInstance
from stratbox.notifications.models import (
    Channel,
    NotificationEvent,
    Severity,
)
from stratbox.notifications.services.settings import settings_for, tenant_group
from tenants.models import Tenant

logger = logging.getLogger(__name__)


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
    # Imported here: the tasks module imports these services (a cycle at import time).
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
