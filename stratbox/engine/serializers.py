"""Input/output shapes of the engine API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from stratbox.engine.models import Run
from stratbox.plugins.selectors import run_report


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
    # The run report's plugin section: each mounted plugin's signal as of the run (machine fields).
    plugins = serializers.SerializerMethodField()

    class Meta(RunOutput.Meta):
        fields = [
            *RunOutput.Meta.fields,
            "config_snapshot",
            "logs",
            "logs_dropped",
            "actions",
            "traceback",
            "plugins",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_plugins(self, obj: Run) -> list[dict[str, Any]]:
        return run_report(instance=obj.instance, at=obj.started_at)


class KillSwitchInput(serializers.Serializer):
    on = serializers.BooleanField()


class PauseInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200)
