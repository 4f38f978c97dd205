"""Shapes of the plugins API (mount configs are the contract's own JSON, validated by the service)."""

from __future__ import annotations

from rest_framework import serializers

from stratbox.plugins.models import PluginArtifact, PluginDefinition


class DefinitionOutput(serializers.ModelSerializer):
    successor = serializers.SlugRelatedField(slug_field="plugin", read_only=True)

    class Meta:
        model = PluginDefinition
        fields = [
            "plugin",
            "description",
            "supported_strategies",
            "supported_notification_targets",
            "supported_modes",
            "supported_schema_versions",
            "default_schema_version",
            "deprecated",
            "successor",
            "alert_channels",
            "max_artifact_age_hours",
        ]


class MountItem(serializers.Serializer):
    strategy = serializers.CharField(required=False)
    plugin = serializers.CharField()
    enabled = serializers.BooleanField(default=True)
    expected_mode = serializers.CharField(required=False)
    expected_schema_version = serializers.CharField(required=False)


class MountsDocument(serializers.Serializer):
    """`{"strategy_plugins": [...]}` — the contract's mount config; a bare list is accepted too."""

    strategy_plugins = MountItem(many=True)


class TargetItem(serializers.Serializer):
    notification_target = serializers.CharField()
    plugin = serializers.CharField()
    enabled = serializers.BooleanField(default=True)
    expected_mode = serializers.CharField(required=False)
    expected_schema_version = serializers.CharField(required=False)


class TargetsDocument(serializers.Serializer):
    notification_targets = TargetItem(many=True)


class ArtifactOutput(serializers.ModelSerializer):
    instance_id = serializers.UUIDField(allow_null=True, read_only=True)
    source = serializers.CharField(read_only=True, help_text="api | upload")

    class Meta:
        model = PluginArtifact
        fields = [
            "id",
            "instance_id",
            "target_type",
            "target",
            "plugin",
            "schema_version",
            "as_of",
            "generated_at",
            "canonical_route",
            "suggested_action",
            "would_trade_if_enabled",
            "reason_codes",
            "stale",
            "escalated",
            "runtime_metadata_allowed",
            "sha256",
            "source",
            "pushed_by",
            "received_at",
        ]


class ArtifactDetailOutput(ArtifactOutput):
    class Meta(ArtifactOutput.Meta):
        fields = [*ArtifactOutput.Meta.fields, "payload"]


class PluginStatusOutput(serializers.Serializer):
    plugin = serializers.CharField()
    status = serializers.ChoiceField(choices=["ok", "stale", "no_artifact", "error"])
    canonical_route = serializers.CharField(required=False)
    suggested_action = serializers.CharField(required=False)
    schema_version = serializers.CharField(required=False)
    as_of = serializers.CharField(required=False)
    reason_codes = serializers.ListField(child=serializers.CharField(), required=False)
    position_control = serializers.JSONField(required=False, allow_null=True)
    line = serializers.CharField(required=False)
    error = serializers.CharField(required=False)
    escalates = serializers.BooleanField(required=False)
    runtime_metadata_allowed = serializers.BooleanField(required=False)
