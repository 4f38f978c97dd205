"""What every instance write shares: the row lock, the audited before/after snapshots, the
engine's nudge after commit, the conflict error."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from django.db import transaction

from stratbox.instances.events import instance_changed
from stratbox.instances.models import StrategyInstance
from stratbox.instances.services.cleaning import MONEY_FIELDS, _money_str
from tenants.errors import Conflict


class InstanceConflict(Conflict):
    """The instance's current state forbids the request (HTTP 409); `code` is an UPPER_SNAKE reason."""


def _mutable_snapshot(instance: StrategyInstance) -> dict[str, Any]:
    """JSON-safe view of the mutable fields (for audit before/after)."""
    return {
        "name": instance.name,
        "config": instance.config,
        **{field: _money_str(getattr(instance, field)) for field in MONEY_FIELDS},
        "max_positions": instance.max_positions,
        "sizing_method": instance.sizing_method,
        "frequency_seconds": instance.frequency_seconds,
        "trigger": instance.trigger,
        "config_revision": instance.config_revision,
        "mode": instance.mode,
    }


def _identity_snapshot(instance: StrategyInstance) -> dict[str, Any]:
    return {
        "id": str(instance.id),
        "strategy": instance.strategy.key,
        "strategy_id": str(instance.strategy_id),
        "version": instance.version.number,
        "version_id": str(instance.version_id),
        "account_id": str(instance.account_id),
        "market_id": instance.market_id,
        "market": instance.market.code,
    }


def _notify_on_commit(instance_id: uuid.UUID) -> None:
    transaction.on_commit(partial(instance_changed, instance_id))


def _lock(instance: StrategyInstance) -> StrategyInstance:
    """Re-read the row under a lock so concurrent writers serialise (config_revision, transitions)."""
    return (
        StrategyInstance.objects.select_for_update(of=("self",))
        .select_related("tenant", "strategy", "version", "market", "account")
        .get(pk=instance.pk)
    )
