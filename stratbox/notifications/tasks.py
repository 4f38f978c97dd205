"""Celery tasks of notifications: ids in, the services do the work; retries back off exponentially."""

from __future__ import annotations

from celery import shared_task

from stratbox.notifications.models import Delivery, DeliveryStatus
from stratbox.notifications.services import delivery_attempt, digest_flush, event_deliver, retry_delay


@shared_task(name="notifications.deliver_event", acks_late=True, ignore_result=True)
def deliver_event_task(event_id: int) -> None:
    """First attempt on every subscribed channel; a redelivered task skips channels already tried."""

    for channel_id, attempt in event_deliver(event_id=event_id):
        delay = retry_delay(attempt)
        if delay is not None:
            delivery_retry_task.apply_async((event_id, channel_id, attempt), countdown=delay)


@shared_task(name="notifications.delivery_retry", acks_late=True, ignore_result=True)
def delivery_retry_task(event_id: int, channel_id: str, attempt: int) -> None:
    if Delivery.objects.filter(event_id=event_id, channel_id=channel_id, attempt=attempt).exists():
        return  # this attempt already ran (a redelivered task)
    delivery = delivery_attempt(event_id=event_id, channel_id=channel_id, attempt=attempt)
    if delivery is not None and delivery.status == DeliveryStatus.FAILED:
        delay = retry_delay(attempt + 1)
        if delay is not None:
            delivery_retry_task.apply_async((event_id, channel_id, attempt + 1), countdown=delay)


@shared_task(name="notifications.digest_flush", ignore_result=True)
def digest_flush_task() -> int:
    return digest_flush()
