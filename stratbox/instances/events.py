"""What the instances app tells the rest of the platform when an instance's desired state changes.

The engine (which sits *above* instances in the layering) reconciles running instances with the
database. Instances must not import the engine, so the dependency is inverted: the engine
registers a callback here from its ``AppConfig.ready()``::

    from stratbox.instances.events import subscribe_instance_changed
    subscribe_instance_changed(reconcile_instance_soon)   # receives the instance id (a UUID)

and every instance service calls ``transaction.on_commit(partial(instance_changed, instance.id))``
so subscribers only ever hear about committed state. The callback gets an id, never a model
instance: it should re-read the row (or enqueue an ids-in Celery task), because the database is
the source of truth and a notification may arrive late or twice.

Channels group names and push payload shapes for instance events will also live in this module
when the dashboard work adds them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

logger = logging.getLogger(__name__)

InstanceChangedCallback = Callable[[uuid.UUID], None]

# Module-level on purpose: registration happens once per process in AppConfig.ready(). Nothing
# here is cluster state — losing a notification only delays reconciliation until the next sweep.
_instance_changed_subscribers: list[InstanceChangedCallback] = []


def subscribe_instance_changed(callback: InstanceChangedCallback) -> None:
    """Register ``callback(instance_id)``; registering the same callable twice is a no-op."""
    if callback not in _instance_changed_subscribers:
        _instance_changed_subscribers.append(callback)


def unsubscribe_instance_changed(callback: InstanceChangedCallback) -> None:
    if callback in _instance_changed_subscribers:
        _instance_changed_subscribers.remove(callback)


def instance_changed(instance_id: uuid.UUID) -> None:
    """Tell every subscriber that the instance's desired state changed (called after commit).

    One failing subscriber must not prevent the others from hearing about the change, nor turn a
    committed, successful request into an error; the failure is logged with its traceback and the
    periodic reconciler sweep repairs whatever the missed notification would have done.
    """
    for callback in list(_instance_changed_subscribers):
        try:
            callback(instance_id)
        except Exception:
            logger.exception("instance_changed subscriber %r failed for instance %s", callback, instance_id)
