"""The mode, the single control surface: off <-> observe (power), observe <-> active (activation)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.instances.services.records import InstanceConflict, _lock, _notify_on_commit
from tenants.errors import ApplicationError
from tenants.services import audit_record

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
