"""CONFIG_SCHEMA: validating a strategy's schema and applying a user's config to it.

Pure Python and side-effect free: used inside the sandbox host, at upload time and by the web
app for API/form validation. A schema maps field names to specs::

    {"window": {"type": "int", "default": 20, "min": 2, "max": 500,
                "description": "SMA window", "live": False},
     "side": {"type": "choice", "choices": ["long", "short"], "default": "long"}}

Types: ``int``, ``float``, ``str``, ``bool``, ``choice``. ``live: true`` marks a field that may
change on a running instance without a reload.
"""

from __future__ import annotations

import math
import re
from typing import Any

FIELD_TYPES: frozenset[str] = frozenset({"int", "float", "str", "bool", "choice"})
SPEC_KEYS: frozenset[str] = frozenset(
    {"type", "default", "min", "max", "choices", "description", "label", "live", "max_length"}
)
MAX_FIELDS = 64
MAX_STR_LENGTH = 1000
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class ConfigErrors(ValueError):
    """Raised by callers that prefer an exception; ``errors`` maps field (or ``__all__``) to message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())))


def _is_number(value: object) -> bool:
    return (type(value) is int or type(value) is float) and math.isfinite(value)


def _check_value(spec: dict[str, Any], value: object) -> tuple[object, str | None]:
    """Check one value against one (already valid) field spec; return (clean value, error)."""
    ftype = spec["type"]
    if ftype == "str":
        if type(value) is str and "\x00" in value:
            # Configs are stored as JSON in PostgreSQL, whose text cannot hold NUL.
            return None, "must not contain NUL characters"
        if type(value) is not str:
            return value, f"must be a string, got {_type_name(value)}"
        limit = spec.get("max_length", MAX_STR_LENGTH)
        if len(value) > limit:
            return value, f"must be at most {limit} characters"
        return value, None
    if ftype == "bool":
        if type(value) is not bool:
            return value, f"must be true or false, got {_type_name(value)}"
        return value, None
    if ftype == "choice":
        choices = spec["choices"]
        if type(value) not in (str, int, float) or value not in choices:
            return value, f"must be one of {', '.join(repr(c) for c in choices)}"
        return value, None
    # int / float: exact types (a bool is not an int), floats finite; ints are accepted as floats
    number: int | float
    if type(value) is int:
        number = value
    elif type(value) is float and ftype == "float":
        number = value
    else:
        expected = "an integer" if ftype == "int" else "a number"
        return value, f"must be {expected}, got {_type_name(value)}"
    if ftype == "float":
        if not math.isfinite(number):
            return value, "must be a finite number"
        number = float(number)
    lo = spec.get("min")
    hi = spec.get("max")
    if lo is not None and number < lo:
        return number, f"must be >= {lo}"
    if hi is not None and number > hi:
        return number, f"must be <= {hi}"
    return number, None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    if type(value) in (list, tuple):
        return "list"
    if type(value) is dict:
        return "object"
    return "unsupported value"


def _validate_field(name: str, spec: object) -> str | None:
    if type(name) is not str or not _FIELD_NAME.match(name):
        return "field names must start with a letter and contain only letters, digits and _"
    if type(spec) is not dict:
        return "field spec must be an object"
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        return f"unknown spec key {unknown[0]!r}"
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        return f"type must be one of {', '.join(sorted(FIELD_TYPES))}"
    for key in ("description", "label"):
        if key in spec and (type(spec[key]) is not str or len(spec[key]) > 500):
            return f"{key} must be a string of at most 500 characters"
    if "live" in spec and type(spec["live"]) is not bool:
        return "live must be true or false"
    if ftype in ("int", "float"):
        for key in ("min", "max"):
            if key in spec and spec[key] is not None:
                bound = spec[key]
                if ftype == "int" and type(bound) is not int:
                    return f"{key} must be an integer"
                if not _is_number(bound):
                    return f"{key} must be a finite number"
        lo, hi = spec.get("min"), spec.get("max")
        if lo is not None and hi is not None and lo > hi:
            return "min must not exceed max"
    elif "min" in spec or "max" in spec:
        return f"min/max are not allowed for type {ftype}"
    if ftype == "choice":
        choices = spec.get("choices")
        if type(choices) is not list or not choices or len(choices) > 100:
            return "choices must be a non-empty list of at most 100 items"
        for choice in choices:
            if type(choice) not in (str, int, float) or (type(choice) is float and not math.isfinite(choice)):
                return "choices must be strings or numbers"
        if len(set(choices)) != len(choices):
            return "choices must be unique"
    elif "choices" in spec:
        return f"choices are not allowed for type {ftype}"
    if "max_length" in spec and (
        ftype != "str" or type(spec["max_length"]) is not int or spec["max_length"] < 0
    ):
        return "max_length must be a non-negative integer on a str field"
    if "default" not in spec:
        return "default is required"
    _, err = _check_value(spec, spec["default"])
    if err:
        return f"default {err}"
    return None


def contains_nul(value: object, depth: int = 0) -> bool:
    """Whether any string in a (bounded) nest of dicts and lists holds a NUL character."""
    if depth > 8:
        return False
    if type(value) is str:
        return "\x00" in value
    if type(value) is dict:
        return any(contains_nul(k, depth + 1) or contains_nul(v, depth + 1) for k, v in value.items())
    if type(value) is list:
        return any(contains_nul(v, depth + 1) for v in value)
    return False


def validate_config_schema(schema: object) -> dict[str, str]:
    """Check a CONFIG_SCHEMA value; return ``{field_or___all__: message}``, empty when valid."""
    if type(schema) is not dict:
        return {"__all__": "CONFIG_SCHEMA must be a dict of field specs"}
    if len(schema) > MAX_FIELDS:
        return {"__all__": f"CONFIG_SCHEMA may define at most {MAX_FIELDS} fields"}
    if contains_nul(schema):
        return {"__all__": "CONFIG_SCHEMA must not contain NUL characters"}
    errors: dict[str, str] = {}
    for name, spec in schema.items():
        err = _validate_field(name, spec)
        if err:
            errors[str(name)[:64]] = err
    return errors


def apply_config(schema: dict[str, Any], config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate ``config`` against a valid ``schema``; return (clean config with defaults, errors).

    Unknown keys, wrong types (a bool is not an int; an int is accepted for a float), values out
    of range and bad choices each yield a message naming the problem.
    """
    errors: dict[str, str] = {}
    if type(config) is not dict:
        return {}, {"__all__": "config must be an object"}
    clean: dict[str, Any] = {}
    for key in config:
        if key not in schema:
            errors[str(key)[:64]] = "unknown field"
    for name, spec in schema.items():
        if name in config:
            value, err = _check_value(spec, config[name])
            if err:
                errors[name] = err
            else:
                clean[name] = value
        else:
            clean[name] = spec["default"]
    return clean, errors


def schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """The config made only of defaults."""
    return {name: spec["default"] for name, spec in schema.items()}


def live_fields(schema: dict[str, Any]) -> frozenset[str]:
    """Names of the fields that may change without a reload."""
    return frozenset(name for name, spec in schema.items() if spec.get("live") is True)
