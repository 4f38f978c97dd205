"""The one place platform events become notifications: the append-only audit log.

Every state change a tenant cares about is already audited in the same transaction that makes it
(`tenants.services.audit_record`): pauses with their reason (user, daily loss, circuit breaker,
kill switch), resumes, the kill switch, mode changes, staff decisions on live requests. `tenants`
sits below every app, so it only keeps a list of subscribers; this module subscribes and turns
the audited actions it knows into `event_emit` calls inside that same transaction (an event
exists exactly when its audit row does).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from stratbox.notifications import events
from tenants.services import subscribe_audit

logger = logging.getLogger(__name__)


def connect() -> None:
    subscribe_audit(on_audit)


def on_audit(event: Any) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
            events.from_audit(event)
    except Exception:  # a notification must never undo the audited change
        logger.exception("notification for audit event %s failed", getattr(event, "pk", None))
