"""What the trading app tells the live feed when an order's status changes (the push; the durable
record is the `OrderEvent` row that `services.lifecycle.order_transition` writes).

The engine owns the Channels publisher and sits above trading in the layering, so the dependency
is inverted as in `stratbox.instances.events`: the engine registers a callback from its
``AppConfig.ready()``::

    subscribe_order_events(callback)   # callback(tenant_id, instance_id, [payload, ...])

and the callback is called only after the writing transaction commits (never for a rollback).

A tick that places orders *captures* its instance's order events instead (`capture_open` /
`capture_close`): they travel with the tick's own events (one seq reservation and one audience
check for all of them), so a tick that places an order costs no extra Redis round trip. Events
whose transaction commits after the capture closed (a caller inside an outer transaction) go to
the subscribers as usual.

Payload (the `data` of an `instance.event` of kind ``order``)::

    {"order_id", "client_order_id", "is_shadow", "from", "to", "filled_qty", "deny_code",
     "reason", "at"}
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)

Q8 = Decimal("0.00000001")
OrderEventsCallback = Callable[[Any, Any, list[dict[str, Any]]], None]

# Registered once per process in AppConfig.ready(); nothing here is cluster state.
_subscribers: list[OrderEventsCallback] = []


class Capture:
    """A tick's collection of its instance's order events (committed ones only)."""

    def __init__(self, instance_id: Any) -> None:
        self.instance_id = str(instance_id)
        self.events: list[dict[str, Any]] = []
        self.open = True


_capture: ContextVar[Capture | None] = ContextVar("order_events_capture", default=None)


def subscribe_order_events(callback: OrderEventsCallback) -> None:
    """Register ``callback(tenant_id, instance_id, payloads)``; registering it twice is a no-op."""
    if callback not in _subscribers:
        _subscribers.append(callback)


def unsubscribe_order_events(callback: OrderEventsCallback) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def capture_open(instance_id: Any) -> Capture:
    """From now on, this thread's committed order events of `instance_id` go to the capture."""
    capture = Capture(instance_id)
    _capture.set(capture)
    return capture


def capture_close(capture: Capture) -> list[dict[str, Any]]:
    """End the capture; returns what it collected (in commit order)."""
    capture.open = False
    if _capture.get() is capture:
        _capture.set(None)
    return capture.events


def payload(
    *,
    order_id: Any,
    client_order_id: str,
    is_shadow: bool,
    from_status: str,
    to_status: str,
    filled_qty: Decimal | None,
    deny_code: str,
    reason: str,
    at: datetime,
) -> dict[str, Any]:
    return {
        "order_id": str(order_id),
        "client_order_id": client_order_id,
        "is_shadow": is_shadow,
        "from": from_status,
        "to": to_status,
        "filled_qty": format(Decimal(filled_qty or 0).quantize(Q8), "f"),  # as the API shows it
        "deny_code": deny_code,
        "reason": reason,
        "at": at.isoformat(),
    }


def announce(tenant_id: Any, instance_id: Any, payloads: list[dict[str, Any]]) -> None:
    """Push `payloads` (one instance's) once the current transaction commits (at once without one)."""
    if not payloads:
        return
    capture = _capture.get()
    if capture is not None and capture.instance_id != str(instance_id):
        capture = None

    def send() -> None:
        if capture is not None and capture.open:
            capture.events.extend(payloads)
            return
        for callback in list(_subscribers):
            try:
                callback(tenant_id, instance_id, payloads)
            except Exception:  # a committed change must never turn into an error: the row is the record
                logger.exception("order events subscriber %r failed for instance %s", callback, instance_id)

    transaction.on_commit(send)
