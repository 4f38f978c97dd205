"""Plugin definitions (the registry), mounts (per instance, per tenant target) and stored artifacts."""

from __future__ import annotations

import uuid

from django.db import models

from stratbox.instances.models import StrategyInstance
from tenants.models import Tenant


class PluginDefinition(models.Model):
    """A versioned plugin contract; staff edit it in the admin (audited). Rows are data, not code."""

    plugin = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    # Strategy keys (catalog keys or tenant strategies' keys); empty = none.
    supported_strategies = models.JSONField(default=list, blank=True)
    supported_notification_targets = models.JSONField(default=list, blank=True)
    supported_modes = models.JSONField(default=list)
    supported_schema_versions = models.JSONField(default=list)
    default_schema_version = models.CharField(max_length=80)
    deprecated = models.BooleanField(default=False)
    successor = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    alert_channels = models.JSONField(default=list, blank=True)
    # Artifacts produced longer ago than this are stale (route blocked, reason artifact:stale); 0 = no limit.
    max_artifact_age_hours = models.PositiveIntegerField(default=36)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deprecated", "plugin"]

    def __str__(self) -> str:
        return self.plugin


class PluginMount(models.Model):
    """A plugin mounted on one instance (the contract's `strategy_plugins` item, minus the path)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="plugin_mounts")
    definition = models.ForeignKey(PluginDefinition, on_delete=models.PROTECT, related_name="mounts")
    enabled = models.BooleanField(default=True)
    expected_mode = models.CharField(max_length=16, blank=True)
    expected_schema_version = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition__plugin"]
        constraints = [models.UniqueConstraint(fields=["instance", "definition"], name="uniq_plugin_mount")]

    def __str__(self) -> str:
        return f"{self.definition_id} on {self.instance_id}"


class PluginTargetMount(models.Model):
    """A tenant's notification-target mount: general alerts, never attached to a strategy."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    notification_target = models.CharField(max_length=120)
    definition = models.ForeignKey(PluginDefinition, on_delete=models.PROTECT, related_name="target_mounts")
    enabled = models.BooleanField(default=True)
    expected_mode = models.CharField(max_length=16, blank=True)
    expected_schema_version = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["notification_target"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "notification_target", "definition"], name="uniq_plugin_target_mount"
            )
        ]

    def __str__(self) -> str:
        return f"{self.definition_id} -> {self.notification_target}"


class ArtifactSource(models.TextChoices):
    API = "api", "API push"
    UPLOAD = "upload", "Upload"


class PluginArtifact(models.Model):
    """One accepted artifact, exactly as received (`raw`, its `sha256`); never updated (trigger)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(
        StrategyInstance, on_delete=models.CASCADE, null=True, blank=True, related_name="plugin_artifacts"
    )
    target_type = models.CharField(max_length=24)
    target = models.CharField(max_length=120)
    plugin = models.CharField(max_length=80)
    schema_version = models.CharField(max_length=80)
    as_of = models.CharField(max_length=40, blank=True)
    generated_at = models.CharField(max_length=40, blank=True)
    # The route and action as the platform takes them (a stale artifact's are `blocked`).
    canonical_route = models.CharField(max_length=40, blank=True)
    suggested_action = models.CharField(max_length=40, blank=True)
    would_trade_if_enabled = models.BooleanField(default=False)
    reason_codes = models.JSONField(default=list, blank=True)
    stale = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    runtime_metadata_allowed = models.BooleanField(default=False)
    sha256 = models.CharField(max_length=64)
    raw = models.TextField()
    payload = models.JSONField()
    source = models.CharField(max_length=8, choices=ArtifactSource.choices, default=ArtifactSource.API)
    pushed_by = models.CharField(max_length=150, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["instance", "plugin", "-received_at"]),
            models.Index(fields=["tenant", "-received_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.plugin} {self.as_of} {self.sha256[:12]}"
