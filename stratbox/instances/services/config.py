"""Changing an instance's config and capital allocation (a change reloads it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from sandbox.schema import live_fields
from stratbox.instances.models import StrategyInstance
from stratbox.instances.services.cleaning import (
    ALLOCATION_FIELDS,
    _clean_allocation,
    _clean_config,
    _clean_name,
)
from stratbox.instances.services.records import _lock, _mutable_snapshot, _notify_on_commit
from tenants.errors import ApplicationError
from tenants.services import audit_record


def instance_config_changes(
    *,
    instance: StrategyInstance,
    config: dict[str, Any] | None = None,
    replace_config: bool = False,
    name: str | None = None,
    total_capital: Decimal | int | str | None = None,
    capital_per_trade: Decimal | int | str | None = None,
    max_positions: int | None = None,
    max_position_size: Decimal | int | str | None = None,
    max_daily_loss: Decimal | int | str | None = None,
    sizing_method: str | None = None,
    frequency_seconds: int | None = None,
    trigger: str | None = None,
) -> dict[str, Any]:
    """Validate an update without writing: the clean values that differ, or a 400 naming each field.

    Used by `instance_update_config` (under the row lock) and by the admin form's clean().
    """
    schema: dict[str, Any] = instance.version.config_schema or {}
    errors: dict[str, Any] = {}
    changes: dict[str, Any] = {}

    if name is not None:
        clean_name, err = _clean_name(name)
        if err:
            errors["name"] = [err]
        elif clean_name != instance.name:
            changes["name"] = clean_name

    given = {
        "total_capital": total_capital,
        "capital_per_trade": capital_per_trade,
        "max_positions": max_positions,
        "max_position_size": max_position_size,
        "max_daily_loss": max_daily_loss,
        "sizing_method": sizing_method,
        "frequency_seconds": frequency_seconds,
        "trigger": trigger,
    }
    provided = {field: value for field, value in given.items() if value is not None}
    if provided:
        values = {field: provided.get(field, getattr(instance, field)) for field in ALLOCATION_FIELDS}
        allocation, allocation_errors = _clean_allocation(
            values, tenant=instance.tenant, provided=set(provided)
        )
        errors.update(allocation_errors)
        for field in provided:
            if field in allocation and allocation[field] != getattr(instance, field):
                changes[field] = allocation[field]

    if config is not None:
        clean_config, config_errors = _merge_config(schema, instance.config, config, replace=replace_config)
        if config_errors:
            errors["config"] = config_errors
        elif clean_config != instance.config:
            changes["config"] = clean_config

    if errors:
        raise ApplicationError(errors=errors)
    return changes


def instance_update_config(
    *,
    instance: StrategyInstance,
    actor: AbstractBaseUser | None,
    config: dict[str, Any] | None = None,
    replace_config: bool = False,
    name: str | None = None,
    total_capital: Decimal | int | str | None = None,
    capital_per_trade: Decimal | int | str | None = None,
    max_positions: int | None = None,
    max_position_size: Decimal | int | str | None = None,
    max_daily_loss: Decimal | int | str | None = None,
    sizing_method: str | None = None,
    frequency_seconds: int | None = None,
    trigger: str | None = None,
) -> StrategyInstance:
    """Change the mutable part of an instance; a `None` field is left as is.

    There is deliberately no parameter for identity. `config` is merged into the current config
    (a key set to null goes back to its default); with `replace_config=True` it replaces it
    (omitted keys take their defaults). Nothing is written, audited or announced when nothing
    actually changes. Returns the updated row.
    """
    fields = {
        "name": name,
        "total_capital": total_capital,
        "capital_per_trade": capital_per_trade,
        "max_positions": max_positions,
        "max_position_size": max_position_size,
        "max_daily_loss": max_daily_loss,
        "sizing_method": sizing_method,
        "frequency_seconds": frequency_seconds,
        "trigger": trigger,
    }
    with transaction.atomic():
        locked = _lock(instance)
        schema: dict[str, Any] = locked.version.config_schema or {}
        changes = instance_config_changes(
            instance=locked, config=config, replace_config=replace_config, **fields
        )
        if not changes:
            return locked

        before = _mutable_snapshot(locked)
        changed_config_keys = _changed_keys(locked.config, changes.get("config", locked.config))
        reload_needed = bool(changed_config_keys - live_fields(schema))
        for field, value in changes.items():
            setattr(locked, field, value)
        update_fields = [*changes, "updated_at"]
        if reload_needed:
            locked.config_revision += 1
            update_fields.append("config_revision")
        locked.save(update_fields=update_fields)
        after = _mutable_snapshot(locked)
        touched = [*changes, "config_revision"] if reload_needed else list(changes)
        audit_record(
            tenant=locked.tenant,
            actor=actor,
            action="instance.config",
            target=locked,
            before={field: before[field] for field in touched},
            after={field: after[field] for field in touched},
        )
        _notify_on_commit(locked.id)
    return locked


def _merge_config(
    schema: dict[str, Any], current: dict[str, Any], patch: object, *, replace: bool
) -> tuple[dict[str, Any], dict[str, Any] | list[str]]:
    if not isinstance(patch, dict):
        return {}, ["must be an object."]
    candidate: dict[str, Any] = {} if replace else dict(current)
    null_errors: dict[str, list[str]] = {}
    for key, value in patch.items():
        if value is None:
            # null means "back to the default" — but only for a field the schema knows.
            if key not in schema:
                null_errors[str(key)[:64]] = ["unknown field"]
            candidate.pop(key, None)
        else:
            candidate[key] = value
    clean, errors = _clean_config(schema, candidate)
    if isinstance(errors, list):
        return clean, errors
    errors = {**null_errors, **errors}
    return clean, errors


def _changed_keys(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    return {key for key in set(old) | set(new) if old.get(key, _MISSING) != new.get(key, _MISSING)}


_MISSING = object()
