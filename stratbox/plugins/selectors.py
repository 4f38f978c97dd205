"""Reads for plugins; every tenant-facing selector takes the tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from stratbox.instances.models import StrategyInstance
from stratbox.plugins import contract
from stratbox.plugins.models import PluginArtifact, PluginDefinition, PluginMount
from stratbox.plugins.services import registry
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


def run_report(*, instance: StrategyInstance, at: datetime) -> list[dict[str, Any]]:
    """The plugin section of a run's report: per mount, the latest artifact received by `at`, with
    its machine fields (judged stale as of `at`). Artifacts are immutable, so this is exact later."""

    reg = registry()
    out: list[dict[str, Any]] = []
    for mount in PluginMount.objects.filter(instance=instance, created_at__lte=at).select_related(
        "definition"
    ):
        plugin = mount.definition.plugin
        row = (
            PluginArtifact.objects.filter(instance=instance, plugin=plugin, received_at__lte=at)
            .order_by("-received_at")
            .first()
        )
        if row is None or plugin not in reg:
            out.append({"plugin": plugin, "status": "no_artifact"})
            continue
        try:
            signal = contract.validate_artifact(
                row.payload,
                mount=contract.Mount(plugin=plugin, strategy=instance.strategy.key),
                registry=reg,
            )
        except contract.ContractError as exc:
            out.append({"plugin": plugin, "status": "error", "error": str(exc)})
            continue
        if contract.is_stale(signal, reg[plugin], at):
            contract.mark_stale(signal)
        entry = contract.report_section([signal])[0]
        entry.update(status="stale" if signal.stale else "ok", artifact_id=str(row.pk), sha256=row.sha256)
        out.append(entry)
    return out
