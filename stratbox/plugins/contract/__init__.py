"""The sidecar strategy-plugin contract (seed 003), as pure functions over plain data.

No database and no Django here: the services read the registry rows into `Definition` values and
call these functions, so every fail-closed rule lives once and is tested directly. Error texts are
the contract's own (docs/plugins.md lists them), so a mount config or an artifact that a
`quant_platform_kit` runtime accepts loads unchanged and one it rejects is rejected with the same
words. Stratbox is stricter in three places: an unknown plugin is refused, a missing
`schema_version` is refused, and an artifact older than the definition's maximum age is *stale*
(route `blocked`, reason `artifact:stale`, which always escalates).

Modules: `values` (the vocabulary and value types), `mounts` (registry checks, mount configs),
`artifacts` (validation, staleness), `display` (escalation, alert keys, text).
"""

from __future__ import annotations

from stratbox.plugins.contract.artifacts import (
    canonical_sha256,
    is_stale,
    load_json,
    mark_stale,
    reason_codes,
    signal_produced_at,
    validate_artifact,
)
from stratbox.plugins.contract.display import (
    alert_key,
    alert_message,
    alert_namespace,
    context_label,
    locale_of,
    log_line,
    notification_line,
    report_section,
    should_alert,
)
from stratbox.plugins.contract.mounts import (
    check_mode,
    check_schema,
    check_strategy,
    check_target,
    definition_for,
    parse_mounts,
    parse_targets,
)
from stratbox.plugins.contract.values import (
    BLOCKED,
    LOCALES,
    NOTIFICATION_TARGET,
    REPORT_FIELDS,
    SHADOW,
    STALE_REASON,
    STRATEGY,
    SUPPORTED_MODES,
    TRUTHY,
    ContractError,
    Definition,
    Mount,
    Signal,
    as_bool,
)

__all__ = [
    "BLOCKED",
    "ContractError",
    "Definition",
    "LOCALES",
    "Mount",
    "NOTIFICATION_TARGET",
    "REPORT_FIELDS",
    "SHADOW",
    "STALE_REASON",
    "STRATEGY",
    "SUPPORTED_MODES",
    "Signal",
    "TRUTHY",
    "alert_key",
    "alert_message",
    "alert_namespace",
    "as_bool",
    "canonical_sha256",
    "check_mode",
    "check_schema",
    "check_strategy",
    "check_target",
    "context_label",
    "definition_for",
    "is_stale",
    "load_json",
    "locale_of",
    "log_line",
    "mark_stale",
    "notification_line",
    "parse_mounts",
    "parse_targets",
    "reason_codes",
    "report_section",
    "should_alert",
    "signal_produced_at",
    "validate_artifact",
]
