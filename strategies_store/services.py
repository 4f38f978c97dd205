"""Writes for the strategy store: uploads, versions, catalog install."""

from __future__ import annotations

from strategies_store.models import StrategyDefinition


def catalog_install() -> list[StrategyDefinition]:
    """Install or update the built-in catalog idempotently. (Filled in by the upload work.)"""
    return list(StrategyDefinition.objects.filter(tenant__isnull=True))
