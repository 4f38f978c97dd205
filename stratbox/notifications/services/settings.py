"""A tenant's notification settings and the notifications' error."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction

from stratbox.notifications.models import (
    NotificationSettings,
)
from stratbox.notifications.profile import profile_changed
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record


class NotificationError(ApplicationError):
    def __init__(self, message: str, *, code: str, field: str | None = None) -> None:
        # A 400 naming `field` ("non_field_errors" when none), in the standard body.
        super().__init__(code, message, field or "non_field_errors")


def tenant_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}"


def settings_for(tenant: Tenant | Any) -> NotificationSettings:
    """The tenant's settings, or the defaults (unsaved: reading never writes)."""
    tenant_id = getattr(tenant, "pk", tenant)
    return NotificationSettings.objects.filter(tenant_id=tenant_id).first() or NotificationSettings(
        tenant_id=tenant_id
    )


@transaction.atomic
def settings_update(*, tenant: Tenant, actor: Any, **fields: Any) -> NotificationSettings:
    NotificationSettings.objects.get_or_create(tenant=tenant)
    found = NotificationSettings.objects.select_for_update().get(tenant=tenant)
    if "timezone" in fields:
        try:
            ZoneInfo(fields["timezone"])
        except Exception as exc:
            raise NotificationError("unknown time zone", code="INVALID_TIMEZONE", field="timezone") from exc
    before = {k: str(getattr(found, k)) for k in fields}
    for key, value in fields.items():
        setattr(found, key, value)
    found.save()
    profile_changed(tenant.pk)
    audit_record(
        tenant=tenant,
        actor=actor,
        action="notifications.settings",
        target=found,
        before=before,
        after={k: str(v) for k, v in fields.items()},
    )
    return found
