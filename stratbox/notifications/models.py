"""Channels (apprise URLs, encrypted), subscriptions, events (the in-app inbox), deliveries, markers."""

from __future__ import annotations

import uuid

from django.db import models

from stratbox.instances.models import StrategyInstance
from tenants.models import Tenant


class Locale(models.TextChoices):
    EN_US = "en-US", "English (US)"
    ZH_CN = "zh-CN", "简体中文"


class EventType(models.TextChoices):
    ORDER_FILLED = "order_filled", "Order filled"
    ORDER_REJECTED = "order_rejected", "Order rejected or denied"
    INSTANCE_PAUSED = "instance_paused", "Instance paused"
    INSTANCE_RESUMED = "instance_resumed", "Instance resumed"
    DAILY_LOSS_HIT = "daily_loss_hit", "Daily-loss limit hit"
    KILL_SWITCH = "kill_switch", "Kill switch"
    STRATEGY_ERROR = "strategy_error", "Strategy error / circuit breaker"
    MODE_CHANGED = "mode_changed", "Mode changed"
    LIVE_REQUEST_DECIDED = "live_request_decided", "Live request decided"
    GRADUATION_READY = "graduation_ready", "Graduation criteria met"
    PLUGIN_ALERT = "plugin_alert", "Plugin alert"
    STRATEGY_MSG = "strategy_msg", "Strategy message"
    CHANNEL_DISABLED = "channel_disabled", "Channel disabled"
    TEST = "test", "Test send"
    DIGEST = "digest", "Digest"


class Level(models.TextChoices):
    ON = "on", "On"
    SILENT = "silent", "Silent"
    OFF = "off", "Off"


class NotificationSettings(models.Model):
    """A tenant's locale, quiet hours and channel limits."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    locale = models.CharField(max_length=8, choices=Locale.choices, default=Locale.EN_US)
    timezone = models.CharField(max_length=64, default="UTC")
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    # Token bucket per channel: `rate_per_hour` tokens an hour, at most `rate_burst` at once.
    rate_per_hour = models.PositiveIntegerField(default=20)
    rate_burst = models.PositiveIntegerField(default=10)
    # A channel is disabled after this many consecutive failed attempts.
    failure_limit = models.PositiveIntegerField(default=5)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"notification settings {self.tenant_id}"


class ChannelStatus(models.TextChoices):
    NEW = "new", "Not yet verified"
    VERIFIED = "verified", "Verified"
    FAILING = "failing", "Failing"
    DISABLED = "disabled", "Disabled"


class Channel(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=16)
    url_ciphertext = models.TextField()
    url_redacted = models.CharField(max_length=500)
    # HMAC key of signed JSON webhooks (encrypted); empty for other kinds.
    secret_ciphertext = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=ChannelStatus.choices, default=ChannelStatus.NEW)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    tokens = models.FloatField(null=True, blank=True)
    tokens_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Subscription(models.Model):
    """event × channel × level, for one instance or (instance null) the tenant's default."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(
        StrategyInstance, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="subscriptions")
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    level = models.CharField(max_length=8, choices=Level.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "instance", "channel", "event_type"],
                name="uniq_subscription",
                nulls_distinct=False,
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type}@{self.channel_id}={self.level}"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class NotificationEvent(models.Model):
    """One event a tenant is told about: the inbox item, and what every delivery links to."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(
        StrategyInstance, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.INFO)
    # The natural key of the event (per channel it becomes the delivery marker's key).
    dedup_key = models.CharField(max_length=400)
    locale = models.CharField(max_length=8, default=Locale.EN_US)
    title = models.CharField(max_length=300)
    body = models.TextField()
    payload = models.JSONField(default=dict, blank=True)
    # Only for the event's own channel (a Test send).
    only_channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.event_type} {self.title}"


class DeliveryStatus(models.TextChoices):
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"


class SkipReason(models.TextChoices):
    DUPLICATE = "duplicate", "Duplicate"
    RATE_LIMITED = "rate_limited", "Rate limited"
    QUIET_HOURS = "quiet_hours", "Quiet hours (in the next digest)"
    DISABLED = "disabled", "Channel disabled"
    MISSING_CONFIG = "missing_config", "Missing configuration"


class Delivery(models.Model):
    """One attempt to deliver one event to one channel."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(NotificationEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=8, choices=DeliveryStatus.choices)
    reason = models.CharField(max_length=16, blank=True)
    error = models.CharField(max_length=500, blank=True)
    target_redacted = models.CharField(max_length=500)
    latency_ms = models.FloatField(null=True, blank=True)
    dedup_key = models.CharField(max_length=500, blank=True)
    # Skipped for quiet hours and not yet sent in a digest.
    digest_pending = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["channel", "digest_pending"]),
        ]

    def __str__(self) -> str:
        return f"{self.status} {self.event_id} -> {self.channel_id}"


class DeliveryMarker(models.Model):
    """`key` was sent on `channel`: inserted in the same transaction as the sent delivery's row."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=500)
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "key"], name="uniq_delivery_marker")]

    def __str__(self) -> str:
        return self.key
