"""The plugin registry read into the contract's values (`registry()`), and the plugins' error."""

from __future__ import annotations

from stratbox.plugins import contract
from stratbox.plugins.models import (
    PluginDefinition,
)
from tenants.errors import ApplicationError


class PluginError(ApplicationError):
    """A refusal with the contract's message (code PLUGIN_CONTRACT) or another rule's."""

    def __init__(self, message: str, *, code: str = "PLUGIN_CONTRACT", field: str | None = None) -> None:
        # A 400 naming `field` ("artifact" when none), in the standard body.
        super().__init__(code, message, field or "artifact")


def to_definition(row: PluginDefinition) -> contract.Definition:
    return contract.Definition(
        plugin=row.plugin,
        supported_strategies=frozenset(row.supported_strategies or []),
        supported_modes=tuple(row.supported_modes or ()),
        supported_schema_versions=tuple(row.supported_schema_versions or ()),
        default_schema_version=row.default_schema_version,
        supported_notification_targets=frozenset(row.supported_notification_targets or []),
        deprecated=row.deprecated,
        successor_plugin=row.successor.plugin if row.successor_id and row.successor else "",
        alert_channels=tuple(row.alert_channels or ()),
        max_artifact_age_hours=row.max_artifact_age_hours,
    )


def registry() -> dict[str, contract.Definition]:
    return {row.plugin: to_definition(row) for row in PluginDefinition.objects.select_related("successor")}
