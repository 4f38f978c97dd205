"""Reads for the strategy store. Every selector that serves a tenant takes the tenant.

A tenant sees its own definitions plus the built-in catalog (tenant NULL); another tenant's
definition is simply not found (`None`), which the APIs turn into a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Count, F, Max, Q, QuerySet

from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import Tenant


def _visible(tenant: Tenant | None) -> Q:
    return Q(tenant__isnull=True) | Q(tenant=tenant) if tenant is not None else Q(tenant__isnull=True)


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def strategy_list(
    *, tenant: Tenant | None, builtin: bool | None = None, style: str | None = None
) -> QuerySet[StrategyDefinition]:
    """The tenant's own definitions and the catalog (own first, then by key), with version counts."""
    qs = StrategyDefinition.objects.filter(_visible(tenant))
    if builtin is True:
        qs = qs.filter(tenant__isnull=True)
    elif builtin is False:
        qs = qs.filter(tenant__isnull=False)
    if style:
        qs = qs.filter(style=style)
    return qs.annotate(version_count=Count("versions"), latest_number=Max("versions__number")).order_by(
        # Own definitions first, the catalog (tenant NULL) last; `tenant__isnull` is not orderable.
        F("tenant_id").asc(nulls_last=True),
        "key",
    )


def strategy_get(*, tenant: Tenant | None, strategy_id: Any) -> StrategyDefinition | None:
    """One definition the tenant may see (own or catalog), else None (also for malformed ids)."""
    pk = _uuid(strategy_id)
    if pk is None:
        return None
    return StrategyDefinition.objects.filter(_visible(tenant), pk=pk).first()


def strategy_get_by_key(*, tenant: Tenant | None, key: str) -> StrategyDefinition | None:
    """Resolve a key as instance creation does: the tenant's own definition first, then the catalog."""
    if tenant is not None:
        own = StrategyDefinition.objects.filter(tenant=tenant, key=key).first()
        if own is not None:
            return own
    return StrategyDefinition.objects.filter(tenant__isnull=True, key=key).first()


def version_list(*, definition: StrategyDefinition) -> QuerySet[StrategyVersion]:
    return StrategyVersion.objects.filter(definition=definition).order_by("-number")


def version_get(*, definition: StrategyDefinition, number: Any) -> StrategyVersion | None:
    """Version `number` of a definition the caller already resolved through a tenant-scoped selector."""
    try:
        number = int(number)
    except (TypeError, ValueError):
        return None
    return StrategyVersion.objects.filter(definition=definition, number=number).first()


def version_get_by_id(*, tenant: Tenant | None, version_id: Any) -> StrategyVersion | None:
    """A version by id, only if its definition is the tenant's own or built in."""
    pk = _uuid(version_id)
    if pk is None:
        return None
    return (
        StrategyVersion.objects.select_related("definition")
        .filter(pk=pk)
        .filter(Q(definition__tenant__isnull=True) | Q(definition__tenant=tenant))
        .first()
    )


def version_latest(definition: StrategyDefinition) -> StrategyVersion | None:
    """The highest-numbered version (what a new instance pins when no version is named)."""
    return StrategyVersion.objects.filter(definition=definition).order_by("-number").first()


def version_previous(version: StrategyVersion) -> StrategyVersion | None:
    return (
        StrategyVersion.objects.filter(definition_id=version.definition_id, number__lt=version.number)
        .order_by("-number")
        .first()
    )


def strategy_in_use_count(*, definition: StrategyDefinition) -> int:
    """How many instances use the definition (reverse accessor; instances sit above this app)."""
    return definition.instances.count()
