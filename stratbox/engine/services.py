"""The engine's public services (the contract names); the work lives in the modules they come from.

- `reconcile(instance_ids=None)` — make the runtime match the database (reconciler).
- `instance_pause` / `instance_resume` / `tenant_kill_switch` — runtime-only pausing (control).
- `tick_run(instance_id, due_at, trigger)` — one idempotent tick (`ticks.tick`).
- `test_run(instance)` — one dry cycle; nothing reaches a broker (`dry_run`).
"""

from __future__ import annotations

from stratbox.engine.control import (
    EngineRuleError,
    PauseReason,
    instance_pause,
    instance_resume,
    tenant_kill_switch,
)
from stratbox.engine.dry_run import test_run
from stratbox.engine.reconciler import instance_unload, reconcile
from stratbox.engine.ticks.tick import tick_run

__all__ = [
    "EngineRuleError",
    "PauseReason",
    "instance_pause",
    "instance_resume",
    "instance_unload",
    "reconcile",
    "tenant_kill_switch",
    "test_run",
    "tick_run",
]
