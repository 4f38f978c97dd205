"""Reads for tenants. Every selector that serves a tenant takes the tenant."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from tenants.models import ApiToken, AuditEvent, Membership, Tenant
from tenants.services import token_digest


def membership_get(*, user: AbstractBaseUser, tenant_id: str | None = None) -> Membership | None:
    """The user's membership in `tenant_id`, or their first membership when no tenant is named."""
    if not getattr(user, "is_authenticated", False):
        return None
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    if tenant_id:
        try:
            return memberships.filter(tenant_id=tenant_id).first()
        except (ValueError, TypeError):
            return None
    return memberships.order_by("created_at").first()


def token_get_active(*, plaintext: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("tenant", "user")
        .filter(digest=token_digest(plaintext), revoked_at__isnull=True, user__is_active=True)
        .first()
    )


def token_list(*, tenant: Tenant) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(tenant=tenant).select_related("user")


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user")


def audit_event_list(*, tenant: Tenant) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(tenant=tenant)
