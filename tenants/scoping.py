"""Resolve the caller's tenant once per request, and the DRF base classes that enforce it.

Every tenant-facing API view derives from `TenantScopedApi` (APIView) or uses
`TenantScopedMixin` (generic views / viewsets): `request.tenant` and `request.membership`
are set before permissions run; viewers may only read; another tenant's object is a 404
(selectors take the tenant, so it is never found), never a 403.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import exceptions, permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from tenants.models import ApiToken, Membership
from tenants.scopes import TokenScopePermission
from tenants.selectors import membership_get

SESSION_TENANT_KEY = "stratbox_tenant_id"


def membership_for_request(request: HttpRequest | Request) -> Membership | None:
    """The membership the request acts under: the token's tenant, else the session's chosen tenant."""
    user = request.user
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiToken):
        return membership_get(user=user, tenant_id=str(auth.tenant_id))
    session = getattr(request, "session", None)
    tenant_id = session.get(SESSION_TENANT_KEY) if session is not None else None
    return membership_get(user=user, tenant_id=tenant_id) or membership_get(user=user)


class IsTenantMember(permissions.BasePermission):
    """Members read; only owners and members write (viewers are read-only everywhere)."""

    message = "Viewers have read-only access."

    def has_permission(self, request: Request, view: APIView) -> bool:
        membership: Membership | None = getattr(request, "membership", None)
        if membership is None:
            return False
        return request.method in permissions.SAFE_METHODS or membership.can_write


class IsTenantOwner(permissions.BasePermission):
    message = "Only the tenant's owners may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        membership: Membership | None = getattr(request, "membership", None)
        return membership is not None and membership.role == "owner"


class IsTenantOwnerOrReadOnly(permissions.BasePermission):
    """Every member reads; only owners write (tenant settings, memberships)."""

    message = "Only the tenant's owners may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        membership: Membership | None = getattr(request, "membership", None)
        if membership is None:
            return False
        return request.method in permissions.SAFE_METHODS or membership.role == "owner"


class TenantScopedMixin:
    permission_classes = [permissions.IsAuthenticated, IsTenantMember]

    def get_permissions(self) -> list[Any]:
        # Every tenant-facing endpoint also checks the caller's token scopes (tenants.scopes),
        # whatever permission_classes a view sets.
        return [*super().get_permissions(), TokenScopePermission()]  # type: ignore[misc]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.perform_authentication(request)  # type: ignore[attr-defined]
        membership = membership_for_request(request) if request.user.is_authenticated else None
        if request.user.is_authenticated and membership is None:
            raise exceptions.PermissionDenied("You are not a member of any tenant.")
        request.membership = membership  # type: ignore[attr-defined]
        request.tenant = membership.tenant if membership else None  # type: ignore[attr-defined]
        super().initial(request, *args, **kwargs)  # type: ignore[misc]


class TenantScopedApi(TenantScopedMixin, APIView):
    """Base for tenant-facing APIViews."""


def not_found(what: str = "Not found.") -> exceptions.NotFound:
    return exceptions.NotFound(what)
