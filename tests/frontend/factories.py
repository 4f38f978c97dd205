"""Small builders for web-UI tests: strategy versions with a known CONFIG_SCHEMA, instances.

Versions are written directly (not through the upload service) so that page tests do not depend on
the sandbox compiling anything; the upload path itself is exercised through the real service.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

SCHEMA: dict[str, Any] = {
    "window": {"type": "int", "default": 20, "min": 2, "max": 500, "description": "SMA window"},
    "threshold": {"type": "float", "default": 0.5, "min": 0.0, "max": 1.0, "description": "Signal threshold"},
    "side": {
        "type": "choice",
        "choices": ["long", "short"],
        "default": "long",
        "description": "Trade direction",
    },
    "verbose": {"type": "bool", "default": False, "description": "Log every tick", "live": True},
    "label": {"type": "str", "default": "sma", "description": "Shown in logs"},
}


def make_definition(
    tenant: Any, key: str = "my-sma", schema: dict[str, Any] | None = None, versions: int = 1
) -> Any:
    from strategies_store.models import StrategyDefinition, StrategyVersion

    definition = StrategyDefinition.objects.create(
        tenant=tenant, key=key, name=f"{key} strategy", style="tick"
    )
    for number in range(1, versions + 1):
        source = f"# {key} v{number}\n"
        StrategyVersion.objects.create(
            definition=definition,
            number=number,
            source=source,
            sha256=hashlib.sha256(source.encode()).hexdigest(),
            config_schema=schema if schema is not None else SCHEMA,
            validation_report={"ok": True},
        )
    return definition


def make_instance(tenant: Any, account: Any, market: Any, definition: Any = None, **extra: Any) -> Any:
    from stratbox.instances.services import instance_create

    definition = definition or make_definition(tenant, key=f"s-{uuid.uuid4().hex[:6]}")
    return instance_create(
        tenant=tenant,
        actor=None,
        name=extra.pop("name", "My bot"),
        strategy_key=definition.key,
        account_id=account.id,
        market_id=market.id,
        **extra,
    )
