"""Checking an instance's mutable fields: money, integers, the name, the capital allocation and the
config against its version's schema."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from sandbox.schema import apply_config
from stratbox.instances.models import SizingMethod, TickTrigger
from tenants.models import Tenant
from tenants.plans import plan_get

MONEY_FIELDS = ("total_capital", "capital_per_trade", "max_position_size", "max_daily_loss")
CAPITAL_FIELDS = (*MONEY_FIELDS, "max_positions", "sizing_method")
ALLOCATION_FIELDS = (*CAPITAL_FIELDS, "frequency_seconds", "trigger")
MUTABLE_FIELDS = ("name", "config", *ALLOCATION_FIELDS)
_MONEY_QUANTUM = Decimal("0.01")
_MONEY_LIMIT = Decimal("1e16")  # DecimalField(max_digits=18, decimal_places=2)
_INT_LIMIT = 2**31 - 1  # PositiveIntegerField
_NAME_MAX = 120


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
    """Validate a complete allocation (capital fields, frequency, trigger); errors name each field.

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
    if values["trigger"] not in TickTrigger.values:
        errors["trigger"] = [f"must be one of {', '.join(TickTrigger.values)}."]
    else:
        clean["trigger"] = values["trigger"]

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
