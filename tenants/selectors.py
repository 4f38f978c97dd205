"""Reads for tenants. Every selector that serves a tenant takes the tenant."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import django_filters
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet

from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant
from tenants.services import token_digest


def membership_get(*, user: AbstractBaseUser, tenant_id: str | None = None) -> Membership | None:
    """The user's membership in `tenant_id`, or their first membership when no tenant is named."""
    if not getattr(user, "is_authenticated", False):
        return None
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    if tenant_id:
        try:
            return memberships.filter(tenant_id=tenant_id).first()
        except (ValueError, TypeError, DjangoValidationError):  # not a UUID: no such tenant
            return None
    return memberships.order_by("created_at").first()


def token_get_active(*, plaintext: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("tenant", "user")
        .filter(digest=token_digest(plaintext), revoked_at__isnull=True, user__is_active=True)
        .first()
    )


def token_list(*, tenant: Tenant, user: AbstractBaseUser | None = None) -> QuerySet[ApiToken]:
    """The tenant's tokens, newest first; with `user`, only that user's tokens."""
    tokens = ApiToken.objects.filter(tenant=tenant).select_related("user")
    return tokens.filter(user=user) if user is not None else tokens


def token_list_visible(*, membership: Membership) -> QuerySet[ApiToken]:
    """Owners manage every token of their tenant; everyone else sees only their own."""
    if membership.role == Role.OWNER:
        return token_list(tenant=membership.tenant)
    return token_list(tenant=membership.tenant, user=membership.user)


def token_get_visible(*, membership: Membership, token_id: uuid.UUID | str) -> ApiToken | None:
    return token_list_visible(membership=membership).filter(pk=token_id).first()


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user")


def membership_get_in_tenant(*, tenant: Tenant, membership_id: int) -> Membership | None:
    return membership_list(tenant=tenant).filter(pk=membership_id).first()


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter()
    target_type = django_filters.CharFilter()
    target_id = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["action", "target_type", "target_id"]


def audit_event_list(*, tenant: Tenant, filters: Mapping[str, Any] | None = None) -> QuerySet[AuditEvent]:
    """The tenant's audit log, newest first, optionally filtered by action / target_type / target_id."""
    events = AuditEvent.objects.filter(tenant=tenant).order_by("-at", "-id")
    if filters:
        events = AuditEventFilter(filters, queryset=events).qs
    return events


def audit_event_get(*, tenant: Tenant, event_id: int) -> AuditEvent | None:
    return audit_event_list(tenant=tenant).filter(pk=event_id).first()


def invitation_list(*, tenant: Any) -> Any:
    """The tenant's pending, unexpired invitations, newest first."""
    from django.utils import timezone

    from tenants.models import Invitation

    return Invitation.objects.filter(tenant=tenant, accepted_at__isnull=True, expires_at__gt=timezone.now())
