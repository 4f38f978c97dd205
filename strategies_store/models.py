"""Strategy definitions (owned by a tenant, or built in) and their immutable, numbered versions."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.models import Tenant


class StrategyStyle(models.TextChoices):
    TICK = "tick", "Tick style (Strategy class)"
    SIGNAL_BUNDLE = "signal_bundle", "Signal style (entry.py + exit.py + config.json)"


class StrategyDefinition(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # NULL tenant = a built-in catalog definition, visible to every tenant, writable by none.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, null=True, blank=True, related_name="strategies"
    )
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    style = models.CharField(max_length=16, choices=StrategyStyle.choices, default=StrategyStyle.TICK)
    # Plain-English "why this makes money"; required for signal-style strategies (seed 002).
    thesis = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="uniq_strategy_key_per_tenant"),
            models.UniqueConstraint(
                fields=["key"], condition=Q(tenant__isnull=True), name="uniq_catalog_key"
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def is_builtin(self) -> bool:
        return self.tenant_id is None


class StrategyVersion(models.Model):
    """One upload. Never changed after creation (services offer no update; the admin is read-only)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    definition = models.ForeignKey(StrategyDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    # Tick style: the strategy module. Signal style: entry.py.
    source = models.TextField()
    # Signal style only: exit.py and the parsed config.json.
    exit_source = models.TextField(blank=True)
    bundle_config = models.JSONField(default=dict, blank=True)
    # Over every file of the upload, so an identical re-upload is detected.
    sha256 = models.CharField(max_length=64)
    config_schema = models.JSONField(default=dict, blank=True)
    # PostgreSQL's jsonb does not keep key order; the author's field order is kept here for forms.
    config_field_order = models.JSONField(default=list, blank=True)
    validation_report = models.JSONField(default=dict, blank=True)
    notes = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["definition", "number"], name="uniq_version_number"),
        ]
        # Not unique: re-uploading an *older* version's content (a revert) is a new version; only a
        # re-upload identical to the latest one is a duplicate (checked in services under a row lock).
        indexes = [models.Index(fields=["definition", "sha256"], name="strategy_version_content_idx")]

    def __str__(self) -> str:
        return f"{self.definition.key} v{self.number}"

    @property
    def config_schema_ordered(self) -> dict:
        """The schema in the order its author wrote it (fields missing from the order list come last)."""
        schema = self.config_schema or {}
        order = [name for name in self.config_field_order or [] if name in schema]
        return {name: schema[name] for name in [*order, *(n for n in schema if n not in order)]}
