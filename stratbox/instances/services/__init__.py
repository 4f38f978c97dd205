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

Modules: `lifecycle` (create, delete), `config`, `modes`, `upgrades`; `cleaning` (field checks)
and `records` (lock, audit snapshots) are what they share.
"""

from __future__ import annotations

from stratbox.instances.services.cleaning import (
    ALLOCATION_FIELDS,
    CAPITAL_FIELDS,
    MONEY_FIELDS,
    MUTABLE_FIELDS,
)
from stratbox.instances.services.config import instance_config_changes, instance_update_config
from stratbox.instances.services.lifecycle import instance_create, instance_delete
from stratbox.instances.services.modes import (
    ACTIVATION_WHILE_OFF,
    ALLOWED_TRANSITIONS,
    CREATE_MODES,
    instance_activate,
    instance_power,
    instance_set_mode,
)
from stratbox.instances.services.records import InstanceConflict
from stratbox.instances.services.upgrades import UpgradeReport, instance_upgrade

__all__ = [
    "ACTIVATION_WHILE_OFF",
    "ALLOCATION_FIELDS",
    "ALLOWED_TRANSITIONS",
    "CAPITAL_FIELDS",
    "CREATE_MODES",
    "InstanceConflict",
    "MONEY_FIELDS",
    "MUTABLE_FIELDS",
    "UpgradeReport",
    "instance_activate",
    "instance_config_changes",
    "instance_create",
    "instance_delete",
    "instance_power",
    "instance_set_mode",
    "instance_update_config",
    "instance_upgrade",
]
