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

Modules: `settings`, `channels` (and subscriptions), `inbox` (events emitted and pushed),
`delivery`.
"""

from __future__ import annotations

from stratbox.notifications.services.channels import (
    ALWAYS,
    DEFAULT_LEVELS,
    channel_create,
    channel_delete,
    channel_set_enabled,
    channel_test,
    level_for,
    subscription_set,
)
from stratbox.notifications.services.delivery import (
    BACKOFF_SECONDS,
    MAX_ATTEMPTS,
    deliveries_prune,
    delivery_attempt,
    digest_flush,
    event_deliver,
    marker_key,
    retry_delay,
)
from stratbox.notifications.services.inbox import event_emit, inbox_mark_read, inbox_message, inbox_push
from stratbox.notifications.services.settings import (
    NotificationError,
    settings_for,
    settings_update,
    tenant_group,
)

__all__ = [
    "ALWAYS",
    "BACKOFF_SECONDS",
    "DEFAULT_LEVELS",
    "MAX_ATTEMPTS",
    "NotificationError",
    "channel_create",
    "channel_delete",
    "channel_set_enabled",
    "channel_test",
    "deliveries_prune",
    "delivery_attempt",
    "digest_flush",
    "event_deliver",
    "event_emit",
    "inbox_mark_read",
    "inbox_message",
    "inbox_push",
    "level_for",
    "marker_key",
    "retry_delay",
    "settings_for",
    "settings_update",
    "subscription_set",
    "tenant_group",
]
