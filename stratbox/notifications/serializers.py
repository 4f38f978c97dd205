"""Shapes of the notifications API; channel URLs are write-only (shown redacted)."""

from __future__ import annotations

from rest_framework import serializers

from stratbox.notifications.models import (
    Channel,
    Delivery,
    EventType,
    Level,
    Locale,
    NotificationEvent,
    NotificationSettings,
    Subscription,
)


class ChannelInput(serializers.Serializer):
    name = serializers.CharField(max_length=80)
    url = serializers.CharField(max_length=2000, write_only=True)


class ChannelOutput(serializers.ModelSerializer):
    url = serializers.CharField(source="url_redacted", read_only=True)
    status = serializers.CharField(read_only=True, help_text="new | verified | failing | disabled")

    class Meta:
        model = Channel
        fields = ["id", "name", "kind", "url", "status", "consecutive_failures", "last_error", "created_at"]


class ChannelCreatedOutput(ChannelOutput):
    signing_secret = serializers.CharField(read_only=True, allow_blank=True)

    class Meta(ChannelOutput.Meta):
        fields = [*ChannelOutput.Meta.fields, "signing_secret"]


class ChannelUpdateInput(serializers.Serializer):
    enabled = serializers.BooleanField()


class SubscriptionInput(serializers.Serializer):
    channel = serializers.UUIDField()
    event_type = serializers.ChoiceField(choices=EventType.choices)
    level = serializers.ChoiceField(choices=Level.choices)
    instance = serializers.UUIDField(required=False, allow_null=True)


class SubscriptionOutput(serializers.ModelSerializer):
    channel = serializers.UUIDField(source="channel_id")
    instance = serializers.UUIDField(source="instance_id", allow_null=True)

    class Meta:
        model = Subscription
        fields = ["id", "channel", "instance", "event_type", "level"]


class DeliveryOutput(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="sent | skipped | failed")
    channel = serializers.UUIDField(source="channel_id")
    channel_name = serializers.CharField(source="channel.name")
    event = serializers.IntegerField(source="event_id")
    event_type = serializers.CharField(source="event.event_type")
    event_title = serializers.CharField(source="event.title")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event",
            "event_type",
            "event_title",
            "channel",
            "channel_name",
            "attempt",
            "status",
            "reason",
            "error",
            "target_redacted",
            "latency_ms",
            "dedup_key",
            "created_at",
        ]


class EventOutput(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", allow_null=True)

    class Meta:
        model = NotificationEvent
        fields = [
            "id",
            "event_type",
            "severity",
            "instance",
            "locale",
            "title",
            "body",
            "payload",
            "created_at",
            "read_at",
        ]


class SettingsIO(serializers.ModelSerializer):
    locale = serializers.ChoiceField(choices=Locale.choices, required=False)

    class Meta:
        model = NotificationSettings
        fields = [
            "locale",
            "timezone",
            "quiet_start",
            "quiet_end",
            "rate_per_hour",
            "rate_burst",
            "failure_limit",
        ]


class MarkReadInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, allow_null=True)
