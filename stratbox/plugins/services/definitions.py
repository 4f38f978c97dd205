"""Plugin definitions written: checked against the contract, saved and audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from stratbox.plugins import contract
from stratbox.plugins.models import (
    PluginDefinition,
    PluginMount,
)
from stratbox.plugins.services.context import context_refresh
from stratbox.plugins.services.registry import PluginError
from tenants.services import audit_record


def definition_check(row: PluginDefinition) -> None:
    """The contract's registry rules (raised as PluginError for the admin form)."""
    if not row.supported_modes:
        raise PluginError(f"strategy plugin {row.plugin} must include at least one supported mode")
    for mode in row.supported_modes:
        if mode not in contract.SUPPORTED_MODES:
            raise PluginError(f"supported_mode must be one of shadow; got {mode!r}", field="supported_modes")
    if row.default_schema_version not in (row.supported_schema_versions or []):
        raise PluginError(
            f"strategy plugin {row.plugin} default_schema_version must be listed in supported_schema_versions",
            field="default_schema_version",
        )


@transaction.atomic
def definition_save(*, row: PluginDefinition, actor: Any, before: dict[str, Any] | None) -> PluginDefinition:
    definition_check(row)
    row.save()
    # What the ticks see depends on the registry (compatibility, maximum age): refresh after commit.
    mounted = list(PluginMount.objects.filter(definition=row).values_list("instance_id", flat=True))
    transaction.on_commit(lambda: [context_refresh(instance_id=i) for i in mounted])
    audit_record(
        tenant=None,
        actor=actor,
        action="plugin_definition.update" if before else "plugin_definition.create",
        target=row,
        before=before,
        after=definition_snapshot(row),
    )
    return row


def definition_snapshot(row: PluginDefinition) -> dict[str, Any]:
    return {
        "plugin": row.plugin,
        "supported_strategies": list(row.supported_strategies or []),
        "supported_notification_targets": list(row.supported_notification_targets or []),
        "supported_modes": list(row.supported_modes or []),
        "supported_schema_versions": list(row.supported_schema_versions or []),
        "default_schema_version": row.default_schema_version,
        "deprecated": row.deprecated,
        "successor": row.successor.plugin if row.successor_id and row.successor else None,
        "alert_channels": list(row.alert_channels or []),
        "max_artifact_age_hours": row.max_artifact_age_hours,
    }
