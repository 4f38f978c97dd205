"""Input/output shapes of the engine API."""

from __future__ import annotations

from rest_framework import serializers

from stratbox.engine.models import Run


class RunOutput(serializers.ModelSerializer):
    instance = serializers.UUIDField(source="instance_id", read_only=True)
    version = serializers.UUIDField(source="version_id", read_only=True, allow_null=True)
    version_number = serializers.IntegerField(source="version.number", read_only=True, allow_null=True)

    class Meta:
        model = Run
        fields = [
            "id",
            "instance",
            "trigger",
            "status",
            "tick_seq",
            "due_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "version",
            "version_number",
            "config_revision",
            "mode",
            "error_code",
            "error_message",
            "worker",
        ]
        read_only_fields = fields


class RunDetailOutput(RunOutput):
    class Meta(RunOutput.Meta):
        fields = [*RunOutput.Meta.fields, "config_snapshot", "logs", "logs_dropped", "actions", "traceback"]
        read_only_fields = fields


class KillSwitchInput(serializers.Serializer):
    on = serializers.BooleanField()


class PauseInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)
