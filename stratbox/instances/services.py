"""Writes for strategy instances: create, update config/allocation, set mode, delete.

Each service owns its transaction, writes an audit event, and after commit notifies the engine
through `events.instance_changed` (the engine subscribes; instances never import it).

Rules that live here, once:

* Identity (`id`, strategy, account, market) is fixed at creation; the version is deployment
  state that only `instance_upgrade` changes (audited, config migrated, reload). The update service
  has no parameter for it; the API rejects an attempt with a 400 naming the field; a database
  trigger (migration 0002) refuses it for any other code path.
* Config is validated against the pinned version's CONFIG_SCHEMA by `sandbox.schema.apply_config`
  and stored complete (defaults filled in), so diffs and reloads are unambiguous.
* `config_revision` means "what a sandbox host loaded is stale": it is bumped only when a config
  field that is *not* marked `"live": true` changes. Capital allocation, frequency and name are
  read from the row by the trusted engine on every tick and are never handed to the strategy at
  load time, so changing them takes effect on the next tick without a reload (and without
  resetting the strategy's state). Live-only config changes are pushed with
  `client.update_config` by the engine, which compares `config` with what it loaded.
* Mode: `off <-> observe` (power), `observe <-> active` (activation). `off -> active` is refused
  (409): an instance must be loaded and observed before it may act. `active -> off` is allowed
  as an emergency stop: it only ever reduces what the instance can do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import ProtectedError

from sandbox.schema import apply_config, live_fields
from stratbox.instances.events import instance_changed
from stratbox.instances.models import Mode, SizingMethod, StrategyInstance
from stratbox.instances.selectors import account_for_instance, market_for_instance
from strategies_store.models import StrategyVersion
from strategies_store.selectors import strategy_get_by_key, version_get, version_latest
from tenants.errors import ApplicationError, Conflict
from tenants.models import Tenant
from tenants.plans import plan_get
from tenants.services import audit_record

MONEY_FIELDS = ("total_capital", "capital_per_trade", "max_position_size", "max_daily_loss")
CAPITAL_FIELDS = (*MONEY_FIELDS, "max_positions", "sizing_method")
ALLOCATION_FIELDS = (*CAPITAL_FIELDS, "frequency_seconds")
MUTABLE_FIELDS = ("name", "config", *ALLOCATION_FIELDS)

# (from, to) pairs a user may ask for. off -> active is the one refused pair (see module docstring).
ALLOWED_TRANSITIONS = frozenset(
    {
        (Mode.OFF, Mode.OBSERVE),
        (Mode.OBSERVE, Mode.OFF),
        (Mode.OBSERVE, Mode.ACTIVE),
        (Mode.ACTIVE, Mode.OBSERVE),
        (Mode.ACTIVE, Mode.OFF),
    }
)
CREATE_MODES = (Mode.OFF, Mode.OBSERVE)

ACTIVATION_WHILE_OFF = "Activation is disabled while the instance is off; power it on (observe) first."

_MONEY_QUANTUM = Decimal("0.01")
_MONEY_LIMIT = Decimal("1e16")  # DecimalField(max_digits=18, decimal_places=2)
_INT_LIMIT = 2**31 - 1  # PositiveIntegerField
_NAME_MAX = 120


class InstanceConflict(Conflict):
    """The instance's current state forbids the request (HTTP 409); `code` is an UPPER_SNAKE reason."""


# --- validation helpers -------------------------------------------------------------------


def _clean_money(value: object) -> tuple[Decimal | None, str | None]:
    # Floats are refused: money is Decimal end to end (0.1 is not representable in binary).
    if isinstance(value, bool) or isinstance(value, float):
        return None, "must be a decimal amount (string or integer), not a float."
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None, "must be a decimal amount."
    if not amount.is_finite():
        return None, "must be a finite amount."
    # Magnitude first: quantizing a huge value would itself overflow the decimal context.
    if abs(amount) >= _MONEY_LIMIT:
        return None, "is too large."
    if amount != amount.quantize(_MONEY_QUANTUM, rounding=ROUND_DOWN):
        return None, "must have at most 2 decimal places."
    return amount.quantize(_MONEY_QUANTUM), None


def _clean_int(value: object, *, minimum: int) -> tuple[int | None, str | None]:
    if type(value) is not int:
        return None, "must be an integer."
    if value < minimum:
        return None, f"must be at least {minimum}."
    if value > _INT_LIMIT:
        return None, f"must be at most {_INT_LIMIT}."
    return value, None


def _clean_name(value: object) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not value.strip():
        return None, "must be a non-empty string."
    if len(value.strip()) > _NAME_MAX:
        return None, f"must be at most {_NAME_MAX} characters."
    return value.strip(), None


def _clean_allocation(
    values: dict[str, Any], *, tenant: Tenant, provided: set[str]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate a complete allocation (capital fields + frequency); errors name each field.

    `provided` is what the caller asked to change, so a cross-field violation is reported on the
    field the caller touched (lowering total_capital below capital_per_trade names total_capital).
    """
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field in MONEY_FIELDS:
        amount, err = _clean_money(values[field])
        if err is None and amount is not None:
            if field == "total_capital" and amount <= 0:
                err = "must be greater than 0."
            elif amount < 0:
                err = "must be 0 or more."
        if err:
            errors[field] = [err]
        else:
            clean[field] = amount
    min_frequency = plan_get(tenant).min_frequency_seconds
    for field, minimum in (("max_positions", 1), ("frequency_seconds", min_frequency)):
        number, err = _clean_int(values[field], minimum=minimum)
        if err and field == "frequency_seconds" and min_frequency > 1 and err.startswith("must be at least"):
            err = f"{err[:-1]} (the shortest period of the tenant's plan)."
        if err:
            errors[field] = [err]
        else:
            clean[field] = number
    if values["sizing_method"] not in SizingMethod.values:
        errors["sizing_method"] = [f"must be one of {', '.join(SizingMethod.values)}."]
    else:
        clean["sizing_method"] = values["sizing_method"]

    total = clean.get("total_capital")
    if total is not None:
        if total > tenant.capital_limit:
            errors.setdefault("total_capital", []).append(
                f"must not exceed the tenant's capital limit ({tenant.capital_limit})."
            )
        for field in ("capital_per_trade", "max_position_size"):
            part = clean.get(field)
            if part is None or part <= total:
                continue
            if field not in provided and "total_capital" in provided:
                errors.setdefault("total_capital", []).append(f"must be at least {field} ({part}).")
            else:
                errors.setdefault(field, []).append(f"must not exceed total_capital ({total}).")
    return clean, errors


def _clean_config(
    schema: dict[str, Any], config: object
) -> tuple[dict[str, Any], dict[str, Any] | list[str]]:
    """(clean config with defaults, errors) — errors keyed by config field, or a list for the whole."""
    if not isinstance(config, dict):
        return {}, ["must be an object."]
    clean, errors = apply_config(schema, config)
    if "__all__" in errors:
        return {}, [errors["__all__"]]
    return clean, {field: [message] for field, message in errors.items()}


def _money_str(value: Decimal) -> str:
    return str(value)


def _mutable_snapshot(instance: StrategyInstance) -> dict[str, Any]:
    """JSON-safe view of the mutable fields (for audit before/after)."""
    return {
        "name": instance.name,
        "config": instance.config,
        **{field: _money_str(getattr(instance, field)) for field in MONEY_FIELDS},
        "max_positions": instance.max_positions,
        "sizing_method": instance.sizing_method,
        "frequency_seconds": instance.frequency_seconds,
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


# --- services -----------------------------------------------------------------------------


@transaction.atomic
def instance_create(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    name: str,
    strategy_key: str,
    version_number: int | None = None,
    account_id: uuid.UUID | str,
    market_id: int,
    config: dict[str, Any] | None = None,
    total_capital: Decimal | int | str | None = None,
    capital_per_trade: Decimal | int | str | None = None,
    max_positions: int | None = None,
    max_position_size: Decimal | int | str | None = None,
    max_daily_loss: Decimal | int | str | None = None,
    sizing_method: str | None = None,
    frequency_seconds: int | None = None,
    mode: str = Mode.OFF,
) -> StrategyInstance:
    """Create an instance of the tenant's (or the catalog's) strategy `strategy_key`.

    The version is pinned: the latest unless `version_number` is given. Every problem found is
    reported at once, keyed by field (`strategy`, `version`, `account`, `market`, `config.<field>`,
    capital fields, `frequency_seconds`, `mode`, `name`). Omitted allocation fields take the
    model's defaults; omitted config fields take the schema's defaults.
    """
    errors: dict[str, Any] = {}

    # The plan's instance quota, counted under the tenant's row lock so two creations cannot both
    # take the last place.
    plan = plan_get(tenant)
    list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))
    if StrategyInstance.objects.filter(tenant=tenant).count() >= plan.max_instances:
        raise InstanceConflict(
            "INSTANCE_QUOTA_EXCEEDED",
            f"The tenant's plan ({plan.name}) allows {plan.max_instances} instances; delete one first.",
        )

    clean_name, err = _clean_name(name)
    if err:
        errors["name"] = [err]

    strategy = strategy_get_by_key(tenant=tenant, key=strategy_key) if isinstance(strategy_key, str) else None
    version: StrategyVersion | None = None
    if strategy is None:
        errors["strategy"] = [f"Invalid strategy key: {strategy_key}"]
    elif version_number is None:
        version = version_latest(strategy)
        if version is None:
            errors["version"] = [f"Strategy '{strategy.key}' has no versions yet."]
    elif type(version_number) is not int or version_number < 1:
        errors["version"] = ["must be a positive integer."]
    else:
        version = version_get(definition=strategy, number=version_number)
        if version is None:
            errors["version"] = [f"Strategy '{strategy.key}' has no version {version_number}."]

    # Same message whether the account does not exist or belongs to another tenant: never reveal which.
    account = account_for_instance(tenant=tenant, account_id=account_id)
    if account is None:
        errors["account"] = ["Unknown account."]

    market = market_for_instance(market_id=market_id)
    if market is None:
        errors["market"] = ["Unknown market."]
    elif not market.active:
        errors["market"] = [f"Market {market.code} is not active."]

    if mode not in CREATE_MODES:
        errors["mode"] = ["An instance is created off or observe; activate it afterwards."]

    defaults = {field: StrategyInstance._meta.get_field(field).get_default() for field in ALLOCATION_FIELDS}
    given = {
        "total_capital": total_capital,
        "capital_per_trade": capital_per_trade,
        "max_positions": max_positions,
        "max_position_size": max_position_size,
        "max_daily_loss": max_daily_loss,
        "sizing_method": sizing_method,
        "frequency_seconds": frequency_seconds,
    }
    provided = {field for field, value in given.items() if value is not None}
    values = {field: defaults[field] if given[field] is None else given[field] for field in ALLOCATION_FIELDS}
    allocation, allocation_errors = _clean_allocation(values, tenant=tenant, provided=provided)
    errors.update(allocation_errors)

    clean_config: dict[str, Any] = {}
    if version is not None:
        clean_config, config_errors = _clean_config(
            version.config_schema or {}, {} if config is None else config
        )
        if config_errors:
            errors["config"] = config_errors

    if errors:
        raise ApplicationError(errors=errors)

    assert strategy is not None and version is not None and account is not None and market is not None
    instance = StrategyInstance.objects.create(
        tenant=tenant,
        name=clean_name,
        strategy=strategy,
        version=version,
        account=account,
        market=market,
        config=clean_config,
        mode=mode,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        **allocation,
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="instance.create",
        target=instance,
        after={**_identity_snapshot(instance), **_mutable_snapshot(instance)},
    )
    _notify_on_commit(instance.id)
    return instance


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


def instance_set_mode(
    *, instance: StrategyInstance, actor: AbstractBaseUser | None, mode: str
) -> StrategyInstance:
    """Move the instance to `mode` (idempotent when already there). Returns the updated row."""
    if mode not in Mode.values:
        raise ApplicationError("invalid", f"must be one of {', '.join(Mode.values)}.", field="mode")
    return _transition(instance=instance, actor=actor, decide=lambda current: Mode(mode))


def instance_power(
    *, instance: StrategyInstance, actor: AbstractBaseUser | None, on: bool
) -> StrategyInstance:
    """The power toggle: on = off -> observe (an instance already on is left as is); off = any -> off."""
    return _transition(
        instance=instance,
        actor=actor,
        decide=lambda current: (Mode.OBSERVE if current == Mode.OFF else current) if on else Mode.OFF,
    )


def instance_activate(
    *, instance: StrategyInstance, actor: AbstractBaseUser | None, active: bool
) -> StrategyInstance:
    """The activation toggle: observe -> active (409 while off); deactivating leaves a non-active one as is."""
    return _transition(
        instance=instance,
        actor=actor,
        decide=lambda current: (
            Mode.ACTIVE if active else (Mode.OBSERVE if current == Mode.ACTIVE else current)
        ),
    )


def _transition(
    *, instance: StrategyInstance, actor: AbstractBaseUser | None, decide: Callable[[Mode], Mode]
) -> StrategyInstance:
    # The target is decided from the *locked* current mode, so a toggle racing another request can
    # never turn "deactivate" into "power on" after someone else switched the instance off.
    with transaction.atomic():
        locked = _lock(instance)
        current = Mode(locked.mode)
        target = decide(current)
        if current == target:
            return locked
        if (current, target) not in ALLOWED_TRANSITIONS:
            # The only pair left out is off -> active.
            raise InstanceConflict("ACTIVATION_WHILE_OFF", ACTIVATION_WHILE_OFF)
        locked.mode = target
        locked.save(update_fields=["mode", "updated_at"])
        audit_record(
            tenant=locked.tenant,
            actor=actor,
            action="instance.mode",
            target=locked,
            before={"mode": current.value},
            after={"mode": target.value},
        )
        _notify_on_commit(locked.id)
    return locked


def instance_delete(*, instance: StrategyInstance, actor: AbstractBaseUser | None) -> None:
    """Delete an instance that is off (409 otherwise, or when trading history protects it)."""
    with transaction.atomic():
        locked = _lock(instance)
        if locked.mode != Mode.OFF:
            raise InstanceConflict(
                "INSTANCE_NOT_OFF", f"Turn the instance off before deleting it (it is {locked.mode})."
            )
        instance_id = locked.id
        before = {**_identity_snapshot(locked), **_mutable_snapshot(locked)}
        try:
            locked.delete()
        except ProtectedError as exc:
            raise InstanceConflict(
                "INSTANCE_HAS_HISTORY",
                "The instance has trading history and cannot be deleted; leave it off instead.",
            ) from exc
        audit_record(
            tenant=locked.tenant,
            actor=actor,
            action="instance.delete",
            target_type=StrategyInstance._meta.label_lower,
            target_id=str(instance_id),
            before=before,
        )
        _notify_on_commit(instance_id)


# --- upgrades -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradeReport:
    """What an upgrade did to the config: fields kept (with their values), added (defaulted or
    given), removed (no longer in the new version's schema, with their last values)."""

    from_version: int
    to_version: int
    kept: dict[str, Any]
    added: dict[str, Any]
    removed: dict[str, Any]
    keep_state: bool
    live_trading_paused: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "from_version": self.from_version,
            "to_version": self.to_version,
            "config": {"kept": self.kept, "added": self.added, "removed": self.removed},
            "keep_state": self.keep_state,
            "live_trading_paused": self.live_trading_paused,
        }


def instance_upgrade(
    *,
    instance: StrategyInstance,
    actor: AbstractBaseUser | None,
    version_number: int,
    keep_state: bool = False,
    config: dict[str, Any] | None = None,
) -> tuple[StrategyInstance, UpgradeReport]:
    """Move the instance to version `version_number` of its strategy (a rollback is an upgrade to
    an earlier number).

    The current config is carried over: fields the new schema still has are kept (and validated
    against it), new ones take their defaults, removed ones are reported. `config` patches the
    carried config first (a null resets a field), so an invalid carried value can be fixed in the
    same call; anything still invalid is a 400 naming `config.<field>` and nothing changes.

    The engine reloads the instance (the config revision moves): its state is reset unless
    `keep_state`, which hands the saved state to the new code's `on_load`. An instance on a live
    account is moved from active to observe: its approval was bound to the old version and config,
    so the risk gate refuses its orders until staff approve again.
    """
    if type(version_number) is not int or version_number < 1:
        raise ApplicationError("invalid", "must be a positive integer.", field="version")
    with transaction.atomic():
        locked = _lock(instance)
        target = version_get(definition=locked.strategy, number=version_number)
        if target is None:
            raise ApplicationError(
                "invalid",
                f"Strategy '{locked.strategy.key}' has no version {version_number}.",
                field="version",
            )
        if target.pk == locked.version_id:
            raise InstanceConflict(
                "ALREADY_ON_VERSION", f"The instance already runs version {version_number}."
            )
        new_schema: dict[str, Any] = target.config_schema or {}
        current = dict(locked.config or {})
        removed = {key: value for key, value in current.items() if key not in new_schema}
        carried = {key: value for key, value in current.items() if key in new_schema}
        clean, errors = _merge_config(new_schema, carried, {} if config is None else config, replace=False)
        if errors:
            raise ApplicationError(errors={"config": errors})
        kept = {key: clean[key] for key in carried if key in clean}
        added = {key: clean[key] for key in clean if key not in carried}

        before = {**_identity_snapshot(locked), "config": current, "config_revision": locked.config_revision}
        old_number = locked.version.number
        live_paused = False
        locked.version = target
        locked.config = clean
        locked.config_revision += 1
        locked.carry_state_revision = locked.config_revision if keep_state else None
        update_fields = ["version", "config", "config_revision", "carry_state_revision", "updated_at"]
        if locked.mode == Mode.ACTIVE and locked.account.kind == "live":
            locked.mode = Mode.OBSERVE
            update_fields.append("mode")
            live_paused = True
        locked.save(update_fields=update_fields)
        report = UpgradeReport(
            from_version=old_number,
            to_version=target.number,
            kept=kept,
            added=added,
            removed=removed,
            keep_state=keep_state,
            live_trading_paused=live_paused,
        )
        audit_record(
            tenant=locked.tenant,
            actor=actor,
            action="instance.upgrade",
            target=locked,
            before=before,
            after={
                **_identity_snapshot(locked),
                "config": clean,
                "config_revision": locked.config_revision,
                "mode": locked.mode,
                "report": report.as_json(),
            },
        )
        _notify_on_commit(locked.id)
    return locked, report
