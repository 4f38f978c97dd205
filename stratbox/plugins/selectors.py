"""Reads for plugins; every tenant-facing selector takes the tenant."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from stratbox.instances.models import StrategyInstance
from stratbox.plugins.models import PluginArtifact, PluginDefinition
from tenants.models import Tenant


def definition_list() -> QuerySet[PluginDefinition]:
    """The registry is shared data every tenant may read (like the market catalog)."""
    return PluginDefinition.objects.select_related("successor").order_by("deprecated", "plugin")


def artifact_list(*, tenant: Tenant, instance: StrategyInstance | None = None) -> QuerySet[PluginArtifact]:
    qs = PluginArtifact.objects.filter(tenant=tenant).defer("raw")
    if instance is not None:
        qs = qs.filter(instance=instance)
    return qs.order_by("-received_at")


def artifact_get(*, tenant: Tenant, artifact_id: Any) -> PluginArtifact | None:
    try:
        return PluginArtifact.objects.filter(tenant=tenant, pk=artifact_id).first()
    except (ValueError, TypeError, ValidationError):
        return None
