"""Creating and deleting an instance."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import ProtectedError

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.instances.selectors import account_for_instance, market_for_instance
from stratbox.instances.services.cleaning import (
    ALLOCATION_FIELDS,
    _clean_allocation,
    _clean_config,
    _clean_name,
)
from stratbox.instances.services.modes import CREATE_MODES
from stratbox.instances.services.records import (
    InstanceConflict,
    _identity_snapshot,
    _lock,
    _mutable_snapshot,
    _notify_on_commit,
)
from strategies_store.models import StrategyVersion
from strategies_store.selectors import strategy_get_by_key, version_get, version_latest
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.plans import plan_get
from tenants.services import audit_record


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
    trigger: str | None = None,
    mode: str = Mode.OFF,
) -> StrategyInstance:
    """Create an instance of the tenant's (or the catalog's) strategy `strategy_key`.

    The version is pinned: the latest unless `version_number` is given. Every problem found is
    reported at once, keyed by field (`strategy`, `version`, `account`, `market`, `config.<field>`,
    capital fields, `frequency_seconds`, `trigger`, `mode`, `name`). Omitted allocation fields take the
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
        "trigger": trigger,
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
