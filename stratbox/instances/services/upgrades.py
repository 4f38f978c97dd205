"""Upgrading an instance to a newer version of its strategy (audited; the config is carried over
where the new schema allows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.instances.services.config import _merge_config
from stratbox.instances.services.records import InstanceConflict, _identity_snapshot, _lock, _notify_on_commit
from strategies_store.selectors import version_get
from tenants.errors import ApplicationError
from tenants.services import audit_record


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
