"""Tenants REST API (/api/v1/): the caller's tenant, tenant switching, API tokens, members, audit log.

Views only parse, scope and shape: rules live in `tenants.services`, reads in `tenants.selectors`.
Objects are always looked up inside the caller's tenant, so another tenant's id is a 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from drf_standardized_errors.openapi_serializers import ErrorResponse403Serializer
from rest_framework import exceptions, generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response

from tenants.invitations import invitation_accept, invitation_create
from tenants.models import ApiToken, AuditEvent, Invitation, Membership
from tenants.scopes import TokenScope, TokenScopePermission
from tenants.scoping import (
    SESSION_TENANT_KEY,
    IsTenantMember,
    IsTenantOwnerOrReadOnly,
    TenantScopedApi,
    TenantScopedMixin,
    not_found,
)
from tenants.selectors import (
    AuditEventFilter,
    audit_event_get,
    audit_event_list,
    invitation_list,
    membership_get,
    membership_get_in_tenant,
    membership_list,
    token_get_visible,
    token_list_visible,
)
from tenants.serializers import (
    AuditEventOutput,
    InvitationAcceptInput,
    InvitationOutput,
    MembershipCreateInput,
    MembershipOutput,
    MembershipUpdateInput,
    TenantOutput,
    TenantSwitchInput,
    TenantUpdateInput,
    TokenCreatedOutput,
    TokenCreateInput,
    TokenOutput,
)
from tenants.services import (
    membership_delete,
    membership_set_role,
    tenant_update,
    token_create,
    token_revoke,
)
from tenants.throttling import TokenCreateThrottle


def _tenant_data(request: Request) -> dict[str, Any]:
    return TenantOutput(request.tenant, context={"role": request.membership.role}).data


# --- tenant ---------------------------------------------------------------------------------


class TenantApi(TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantOwnerOrReadOnly]

    @extend_schema(responses=TenantOutput, summary="The caller's tenant")
    def get(self, request: Request) -> Response:
        return Response(_tenant_data(request))

    @extend_schema(request=TenantUpdateInput, responses=TenantOutput, summary="Rename the tenant (owners)")
    def patch(self, request: Request) -> Response:
        data = TenantUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        if "name" in data.validated_data:
            request.tenant = tenant_update(
                tenant=request.tenant, actor=request.user, name=data.validated_data["name"]
            )
        return Response(_tenant_data(request))


class TenantSwitchApi(TenantScopedApi):
    write_scope = TokenScope.READ  # not a write; tokens are refused below anyway
    # Switching is not a write to tenant data: viewers may switch too.
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        request=TenantSwitchInput,
        # 403: a token-authenticated caller (tokens are bound to their tenant).
        responses={200: TenantOutput, 403: ErrorResponse403Serializer},
        summary="Choose the tenant a browser session acts in",
        description="Session users only; an API token is bound to its tenant. Not a member: 404.",
    )
    def post(self, request: Request) -> Response:
        if isinstance(request.auth, ApiToken):
            raise exceptions.PermissionDenied(
                "An API token is bound to its tenant; switching applies to sessions."
            )
        data = TenantSwitchInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_get(user=request.user, tenant_id=str(data.validated_data["tenant_id"]))
        if membership is None:
            raise not_found("No such tenant.")
        request.session[SESSION_TENANT_KEY] = str(membership.tenant_id)
        request.membership, request.tenant = membership, membership.tenant
        return Response(_tenant_data(request))


# --- tokens ---------------------------------------------------------------------------------


class TokenListCreateApi(TenantScopedMixin, generics.ListAPIView):
    """Owners see every token of the tenant; members and viewers see their own."""

    serializer_class = TokenOutput
    filter_backends: list[Any] = []
    throttle_classes = [TokenCreateThrottle]

    def get_queryset(self) -> QuerySet[ApiToken]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return ApiToken.objects.none()
        return token_list_visible(membership=self.request.membership)

    @extend_schema(summary="List API tokens")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=TokenCreateInput,
        responses={201: TokenCreatedOutput},
        summary="Create an API token",
        description="The response carries the plaintext `token`: it is shown this once and never again.",
    )
    def post(self, request: Request) -> Response:
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = token_create(
            tenant=request.tenant,
            user=request.user,
            name=data.validated_data["name"],
            scopes=data.validated_data.get("scopes"),
            created_with=request.auth if isinstance(request.auth, ApiToken) else None,
        )
        return Response({**TokenOutput(issued.token).data, "token": issued.plaintext}, status=201)


class _VisibleTokenMixin:
    def token_scope_for(self, method: str) -> str | None:
        # A token may always revoke itself (it only gives up rights); any other token needs `admin`.
        request = self.request  # type: ignore[attr-defined]
        auth = getattr(request, "auth", None)
        own = isinstance(auth, ApiToken) and str(auth.pk) == str(self.kwargs.get("token_id"))  # type: ignore[attr-defined]
        return TokenScope.READ if own and method in ("DELETE", "POST") else None

    def _token(self, request: Request, token_id: Any) -> ApiToken:
        token = token_get_visible(membership=request.membership, token_id=token_id)
        if token is None:
            raise not_found("No such token.")
        return token


class TokenDetailApi(_VisibleTokenMixin, TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantMember]

    @extend_schema(responses=TokenOutput, summary="Get an API token")
    def get(self, request: Request, token_id: Any) -> Response:
        return Response(TokenOutput(self._token(request, token_id)).data)

    @extend_schema(responses={204: None}, summary="Revoke an API token")
    def delete(self, request: Request, token_id: Any) -> Response:
        token_revoke(token=self._token(request, token_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRevokeApi(_VisibleTokenMixin, TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantMember]

    @extend_schema(request=None, responses=TokenOutput, summary="Revoke an API token (idempotent)")
    def post(self, request: Request, token_id: Any) -> Response:
        token = token_revoke(token=self._token(request, token_id), actor=request.user)
        return Response(TokenOutput(token).data)


# --- members --------------------------------------------------------------------------------


class MembershipListCreateApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = MembershipOutput
    permission_classes = [permissions.IsAuthenticated, IsTenantOwnerOrReadOnly]
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Membership]:
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        return membership_list(tenant=self.request.tenant)

    @extend_schema(summary="List members")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=MembershipCreateInput,
        responses={202: InvitationOutput},
        summary="Invite an email address (owners); its user accepts the emailed link",
    )
    def post(self, request: Request) -> Response:
        """Nobody is added without consent: an invitation is emailed, and the answer is the same
        whether or not an account exists for the address."""
        data = MembershipCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        issued = invitation_create(
            tenant=request.tenant,
            actor=request.user,
            base_url=request.build_absolute_uri("/").rstrip("/"),
            **data.validated_data,
        )
        return Response(InvitationOutput(issued.invitation).data, status=status.HTTP_202_ACCEPTED)


class InvitationListApi(TenantScopedMixin, generics.ListAPIView):
    """The tenant's pending invitations (owners; others read)."""

    serializer_class = InvitationOutput
    permission_classes = [permissions.IsAuthenticated, IsTenantOwnerOrReadOnly]
    filter_backends: list[Any] = []

    def get_queryset(self) -> QuerySet[Invitation]:
        if getattr(self, "swagger_fake_view", False):
            return Invitation.objects.none()
        return invitation_list(tenant=self.request.tenant)

    @extend_schema(summary="List pending invitations")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class InvitationAcceptApi(generics.GenericAPIView):
    """Accept an invitation sent to the signed-in user's email (any user: they need no tenant yet).
    A token needs the `admin` scope: joining a tenant is not an assistant's call."""

    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]
    serializer_class = InvitationAcceptInput

    @extend_schema(
        request=InvitationAcceptInput, responses={201: MembershipOutput}, summary="Accept an invitation"
    )
    def post(self, request: Request) -> Response:
        data = InvitationAcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = invitation_accept(token=data.validated_data["token"], user=request.user)
        return Response(MembershipOutput(membership).data, status=status.HTTP_201_CREATED)


class MembershipDetailApi(TenantScopedApi):
    permission_classes = [permissions.IsAuthenticated, IsTenantOwnerOrReadOnly]

    def _membership(self, request: Request, membership_id: int) -> Membership:
        membership = membership_get_in_tenant(tenant=request.tenant, membership_id=membership_id)
        if membership is None:
            raise not_found("No such member.")
        return membership

    @extend_schema(responses=MembershipOutput, summary="Get a member")
    def get(self, request: Request, membership_id: int) -> Response:
        return Response(MembershipOutput(self._membership(request, membership_id)).data)

    @extend_schema(
        request=MembershipUpdateInput, responses=MembershipOutput, summary="Change a role (owners)"
    )
    def patch(self, request: Request, membership_id: int) -> Response:
        membership = self._membership(request, membership_id)
        data = MembershipUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = membership_set_role(
            membership=membership, actor=request.user, role=data.validated_data["role"]
        )
        return Response(MembershipOutput(membership).data)

    @extend_schema(responses={204: None}, summary="Remove a member (owners)")
    def delete(self, request: Request, membership_id: int) -> Response:
        membership = self._membership(request, membership_id)
        membership_delete(membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- audit ----------------------------------------------------------------------------------


class AuditEventListApi(TenantScopedMixin, generics.ListAPIView):
    """The tenant's audit log, newest first (read-only for everyone)."""

    serializer_class = AuditEventOutput
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditEventFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return audit_event_list(tenant=self.request.tenant)

    @extend_schema(summary="List audit events")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AuditEventDetailApi(TenantScopedApi):
    @extend_schema(responses=AuditEventOutput, summary="Get an audit event")
    def get(self, request: Request, event_id: int) -> Response:
        event = audit_event_get(tenant=request.tenant, event_id=event_id)
        if event is None:
            raise not_found("No such audit event.")
        return Response(AuditEventOutput(event).data)
