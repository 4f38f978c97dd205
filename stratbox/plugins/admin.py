"""Admin for plugins: staff edit the registry (every save audited, the contract's registry rules
checked); mounts and artifacts are shown read-only (artifacts are immutable)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from stratbox.plugins import services
from stratbox.plugins.models import PluginArtifact, PluginDefinition, PluginMount, PluginTargetMount


class DefinitionForm(forms.ModelForm):
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

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        row = PluginDefinition(
            plugin=cleaned.get("plugin") or "",
            supported_modes=cleaned.get("supported_modes") or [],
            supported_schema_versions=cleaned.get("supported_schema_versions") or [],
            default_schema_version=cleaned.get("default_schema_version") or "",
        )
        try:
            services.definition_check(row)
        except services.PluginError as err:
            raise forms.ValidationError(err.message) from err
        return cleaned


@admin.register(PluginDefinition)
class PluginDefinitionAdmin(admin.ModelAdmin):
    form = DefinitionForm
    list_display = (
        "plugin",
        "default_schema_version",
        "deprecated",
        "successor",
        "max_artifact_age_hours",
        "updated_at",
    )
    list_filter = ("deprecated",)
    search_fields = ("plugin",)

    def save_model(self, request: HttpRequest, obj: PluginDefinition, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk:
            stored = PluginDefinition.objects.select_related("successor").get(pk=obj.pk)
            before = services.definition_snapshot(stored)
        services.definition_save(row=obj, actor=request.user, before=before)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # mounts reference definitions; deprecate instead


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PluginMount)
class PluginMountAdmin(_ReadOnly):
    list_display = ("instance", "definition", "enabled", "expected_schema_version", "tenant")
    list_select_related = ("instance", "definition", "tenant")


@admin.register(PluginTargetMount)
class PluginTargetMountAdmin(_ReadOnly):
    list_display = ("notification_target", "definition", "enabled", "tenant")


@admin.register(PluginArtifact)
class PluginArtifactAdmin(_ReadOnly):
    list_display = (
        "plugin",
        "target",
        "as_of",
        "canonical_route",
        "suggested_action",
        "stale",
        "escalated",
        "sha256",
        "received_at",
    )
    list_filter = ("plugin", "stale", "escalated")
