"""Admin for notifications: read-only views (channels show only their redacted URL)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stratbox.notifications.models import Channel, Delivery, NotificationEvent


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Channel)
class ChannelAdmin(_ReadOnly):
    list_display = ("name", "kind", "url_redacted", "status", "consecutive_failures", "tenant")
    exclude = ("url_ciphertext", "secret_ciphertext")


@admin.register(NotificationEvent)
class NotificationEventAdmin(_ReadOnly):
    list_display = ("event_type", "severity", "title", "tenant", "created_at")
    list_filter = ("event_type", "severity")


@admin.register(Delivery)
class DeliveryAdmin(_ReadOnly):
    list_display = ("event", "channel", "attempt", "status", "reason", "latency_ms", "created_at")
    list_filter = ("status", "reason")
