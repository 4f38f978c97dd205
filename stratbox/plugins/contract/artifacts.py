"""Artifacts: a plugin's JSON file validated into a `Signal`, and its staleness (stricter than the
contract: the loader there trusts a stopped pipeline's file)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stratbox.plugins.contract.mounts import (
    check_mode,
    check_schema,
    check_strategy,
    check_target,
    definition_for,
)
from stratbox.plugins.contract.values import (
    BLOCKED,
    NOTIFICATION_TARGET,
    STALE_REASON,
    STRATEGY,
    ContractError,
    Definition,
    Mount,
    Signal,
    _mode,
    _optional,
    _required,
    as_bool,
)


def load_json(raw: bytes | str) -> Any:
    """Parse an uploaded artifact; invalid JSON is refused with the decoder's own message."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ContractError(f"{type(exc).__name__}: {exc}") from exc
    except RecursionError as exc:
        raise ContractError("strategy plugin signal is nested too deeply") from exc
    if _has_nul(value):  # PostgreSQL text and jsonb cannot hold NUL
        raise ContractError("strategy plugin signal must not contain NUL characters")
    return value


def _has_nul(value: Any, depth: int = 0) -> bool:
    if depth > 200:
        raise ContractError("strategy plugin signal is nested too deeply")
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, Mapping):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


def canonical_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def validate_artifact(payload: Any, *, mount: Mount, registry: Mapping[str, Definition]) -> Signal:
    """Validate one artifact against the mount it was pushed to; the contract's checks, fail-closed."""
    if not isinstance(payload, Mapping):
        raise ContractError("strategy plugin signal must be a JSON object")
    raw_type = _optional(payload.get("target_type"))
    target_type = raw_type or (
        NOTIFICATION_TARGET if _optional(payload.get("notification_target")) else STRATEGY
    )
    if target_type not in (STRATEGY, NOTIFICATION_TARGET):
        raise ContractError(
            f"strategy plugin signal target_type must be strategy or notification_target; got {raw_type!r}"
        )
    if target_type == STRATEGY:
        target = _required(payload.get("strategy"), "strategy")
    else:
        target = _required(payload.get("notification_target"), "notification_target")
    plugin = _required(payload.get("plugin"), "plugin")
    mode = _mode(payload.get("mode"), "mode")
    configured_mode = _mode(payload.get("configured_mode", mode), "configured_mode")
    effective_mode = _mode(payload.get("effective_mode", mode), "effective_mode")
    if mount.expected_mode and mount.expected_mode != effective_mode:
        raise ContractError(
            f"strategy plugin artifact mode mismatch: expected {mount.expected_mode}, got {effective_mode}"
        )
    # Identity against the mount.
    if mount.strategy and target_type != STRATEGY:
        raise ContractError(
            f"strategy plugin artifact target mismatch: expected strategy {mount.strategy}, got notification target {target}"
        )
    if mount.notification_target and target_type != NOTIFICATION_TARGET:
        raise ContractError(
            f"strategy plugin artifact target mismatch: expected notification target {mount.notification_target}, "
            f"got strategy {target}"
        )
    if mount.strategy and target != mount.strategy:
        raise ContractError(
            f"strategy plugin artifact strategy mismatch: expected {mount.strategy}, got {target}"
        )
    if mount.notification_target and target != mount.notification_target:
        raise ContractError(
            f"strategy plugin artifact notification_target mismatch: expected {mount.notification_target}, got {target}"
        )
    if plugin != mount.plugin:
        raise ContractError(
            f"strategy plugin artifact plugin mismatch: expected {mount.plugin}, got {plugin}"
        )
    definition = definition_for(plugin, registry)
    if target_type == STRATEGY:
        check_strategy(definition, target, "artifact")
    else:
        check_target(definition, target, "artifact")
    check_mode(definition, effective_mode, "artifact")
    schema_version = _optional(payload.get("schema_version"))
    if mount.expected_schema_version and schema_version != mount.expected_schema_version:
        raise ContractError(
            "strategy plugin artifact schema_version mismatch: "
            f"expected {mount.expected_schema_version}, got {schema_version or '<missing>'}"
        )
    if not schema_version:  # stricter than the contract, which accepts a missing schema_version
        raise ContractError("schema_version is required")
    check_schema(definition, schema_version, "artifact")
    controls = payload.get("execution_controls", {})
    if controls is None:
        controls = {}
    if not isinstance(controls, Mapping):
        raise ContractError("strategy plugin signal execution_controls must be an object")
    return Signal(
        target_type=target_type,
        target=target,
        plugin=plugin,
        mode=mode,
        configured_mode=configured_mode,
        effective_mode=effective_mode,
        schema_version=schema_version,
        as_of=_optional(payload.get("as_of")),
        generated_at=_optional(payload.get("generated_at")),
        canonical_route=_optional(payload.get("canonical_route")),
        suggested_action=_optional(payload.get("suggested_action")),
        would_trade_if_enabled=as_bool(payload.get("would_trade_if_enabled")),
        execution_controls=dict(controls),
        reason_codes=reason_codes(payload),
        payload=dict(payload),
    )


def reason_codes(payload: Mapping[str, Any]) -> list[str]:
    """Machine reason codes: top-level, else the log record's, else position control's."""
    for source in (
        payload,
        payload.get("log_record"),
        payload.get("position_control"),
        payload.get("arbiter"),
    ):
        if isinstance(source, Mapping) and isinstance(source.get("reason_codes"), list):
            return [str(code) for code in source["reason_codes"] if isinstance(code, str | int | float)][:50]
    return []


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            return None
        # A signal date counts as produced at the end of that day.
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def signal_produced_at(signal: Signal) -> datetime | None:
    """When the pipeline produced it: `generated_at`, else the end of the `as_of` day."""
    return _parse_time(signal.generated_at) or _parse_time(signal.as_of)


def is_stale(signal: Signal, definition: Definition, now: datetime) -> bool:
    """Older than the definition's maximum age (0 = no limit); an undatable artifact is stale."""
    if definition.max_artifact_age_hours <= 0:
        return False
    produced = signal_produced_at(signal)
    return produced is None or now - produced > timedelta(hours=definition.max_artifact_age_hours)


def mark_stale(signal: Signal) -> Signal:
    """The route a stale artifact takes: blocked, with the reason `artifact:stale`."""
    signal.stale = True
    signal.canonical_route = BLOCKED
    signal.suggested_action = BLOCKED
    if STALE_REASON not in signal.reason_codes:
        signal.reason_codes = [STALE_REASON, *signal.reason_codes]
    return signal
