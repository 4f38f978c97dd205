"""Mounts: which plugins an instance (or a tenant's notification targets) reads, set from a
mount config."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from stratbox.instances.models import StrategyInstance
from stratbox.plugins import contract
from stratbox.plugins.models import (
    PluginDefinition,
    PluginMount,
    PluginTargetMount,
)
from stratbox.plugins.services.context import context_refresh
from stratbox.plugins.services.registry import PluginError, registry
from tenants.models import Tenant
from tenants.services import audit_record


def _refuse(exc: contract.ContractError) -> PluginError:
    return PluginError(str(exc), code="PLUGIN_CONTRACT", field="strategy_plugins")


def mounts_config(instance: StrategyInstance) -> dict[str, Any]:
    """The instance's mounts in the contract's shape (what `mounts_set` accepts back)."""
    mounts = PluginMount.objects.filter(instance=instance).select_related("definition")
    return {
        "strategy_plugins": [
            contract.Mount(
                plugin=m.definition.plugin,
                strategy=instance.strategy.key,
                enabled=m.enabled,
                expected_mode=m.expected_mode,
                expected_schema_version=m.expected_schema_version,
            ).as_dict()
            for m in mounts
        ]
    }


@transaction.atomic
def mounts_set(*, instance: StrategyInstance, raw: Any, actor: Any) -> list[PluginMount]:
    """Replace the instance's mounts with `raw` (the contract's `strategy_plugins` config), fail-closed."""
    reg = registry()
    try:
        parsed = contract.parse_mounts(raw, strategy=instance.strategy.key, registry=reg)
    except contract.ContractError as exc:
        raise _refuse(exc) from exc
    before = mounts_config(instance)
    PluginMount.objects.filter(instance=instance).delete()
    rows = {d.plugin: d for d in PluginDefinition.objects.filter(plugin__in=[m.plugin for m in parsed])}
    created = [
        PluginMount.objects.create(
            tenant_id=instance.tenant_id,
            instance=instance,
            definition=rows[m.plugin],
            enabled=m.enabled,
            expected_mode=m.expected_mode,
            expected_schema_version=m.expected_schema_version,
        )
        for m in parsed
    ]
    audit_record(
        tenant=instance.tenant,
        actor=actor,
        action="instance.plugin_mounts",
        target=instance,
        before=before,
        after={"strategy_plugins": [m.as_dict() for m in parsed]},
    )
    transaction.on_commit(lambda: context_refresh(instance_id=instance.pk))
    return created


def targets_config(tenant: Tenant) -> dict[str, Any]:
    rows = PluginTargetMount.objects.filter(tenant=tenant).select_related("definition")
    return {
        "notification_targets": [
            contract.Mount(
                plugin=m.definition.plugin,
                notification_target=m.notification_target,
                enabled=m.enabled,
                expected_mode=m.expected_mode,
                expected_schema_version=m.expected_schema_version,
            ).as_dict()
            for m in rows
        ]
    }


@transaction.atomic
def targets_set(*, tenant: Tenant, raw: Any, actor: Any) -> list[PluginTargetMount]:
    reg = registry()
    try:
        parsed = contract.parse_targets(raw, registry=reg)
    except contract.ContractError as exc:
        raise PluginError(str(exc), field="notification_targets") from exc
    before = targets_config(tenant)
    PluginTargetMount.objects.filter(tenant=tenant).delete()
    rows = {d.plugin: d for d in PluginDefinition.objects.filter(plugin__in=[m.plugin for m in parsed])}
    created = [
        PluginTargetMount.objects.create(
            tenant=tenant,
            notification_target=m.notification_target,
            definition=rows[m.plugin],
            enabled=m.enabled,
            expected_mode=m.expected_mode,
            expected_schema_version=m.expected_schema_version,
        )
        for m in parsed
    ]
    audit_record(
        tenant=tenant,
        actor=actor,
        action="tenant.plugin_targets",
        target=tenant,
        before=before,
        after={"notification_targets": [m.as_dict() for m in parsed]},
    )
    return created
