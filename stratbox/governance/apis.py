"""REST API v1 for governance: the tenant's live-trading requests and the staff approval queue.

Tenant endpoints are scoped (another tenant's instance or request is a 404; viewers get 403 on
writes). Staff endpoints (`staff/...`) require `is_staff` and refuse every tenant user with 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from stratbox.governance import selectors, services
from stratbox.governance.models import LiveApprovalRequest
from stratbox.governance.serializers import (
    DecisionInput,
    LiveRequestInput,
    LiveRequestOutput,
    StaffLiveRequestDetailOutput,
    StaffLiveRequestOutput,
)
from stratbox.instances.selectors import instance_get
from stratbox.instances.serializers import ConflictErrorResponse
from tenants.scopes import TokenScope, TokenScopePermission
from tenants.scoping import TenantScopedApi, TenantScopedMixin

TAG = ["governance"]
STAFF_TAG = ["staff"]
INSTANCE_ID = OpenApiParameter("instance_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
REQUEST_ID = OpenApiParameter("request_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
CONFLICT = OpenApiResponse(
    ConflictErrorResponse, description="The request's state forbids this (UPPER_SNAKE code)."
)
STATUS = OpenApiParameter("status", OpenApiTypes.STR, enum=["pending", "approved", "rejected", "revoked"])


def _instance_or_404(request: Request, instance_id: str) -> Any:
    instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
    if instance is None:
        raise NotFound("Instance not found.")
    return instance


class InstanceLiveRequestApi(TenantScopedApi):
    write_scope = TokenScope.LIVE_REQUEST

    @extend_schema(
        tags=TAG,
        summary="Request live trading for a paper instance",
        description="Refused with 400 listing every unmet graduation criterion (attr `criteria`, one "
        "error per criterion with its code) or naming `instance` / `live_account`; 409 REQUEST_PENDING "
        "while a request for the instance is waiting. Otherwise the request enters the staff queue.",
        parameters=[INSTANCE_ID],
        request=LiveRequestInput,
        responses={201: LiveRequestOutput, 409: CONFLICT},
    )
    def post(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = LiveRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.live_request_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            instance=instance,
            live_account_id=data.validated_data["live_account"],
            note=data.validated_data["note"],
        )
        created = selectors.live_request_get(tenant=request.tenant, request_id=created.pk)  # type: ignore[attr-defined]
        return Response(LiveRequestOutput(created).data, status=status.HTTP_201_CREATED)


class InstanceGovernanceApi(TenantScopedApi):
    @extend_schema(
        tags=TAG,
        summary="Track record, graduation criteria and live-approval status of an instance",
        description="`record` is scored from the instance's real ledger (paper or live, per its "
        "account), `shadow_record` from its observe-mode shadow ledger; they are never mixed.",
        parameters=[INSTANCE_ID],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request: Request, instance_id: str) -> Response:
        instance = _instance_or_404(request, instance_id)
        data = services.instance_graduation(instance)
        approval = selectors.live_approval_for(instance)
        data["live_approval"] = {
            "required": instance.account.kind == "live",
            "current": selectors.live_approval_is_current(instance),
            "request_id": str(approval.pk) if approval else None,
            "status": approval.status if approval else None,
        }
        pending = selectors.live_request_list(
            tenant=request.tenant, filters={"instance": instance.pk}
        ).first()  # type: ignore[attr-defined]
        data["latest_request"] = LiveRequestOutput(pending).data if pending else None
        return Response(data)


class LiveRequestListApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = LiveRequestOutput

    @extend_schema(
        tags=TAG, summary="The tenant's live-trading requests and their status", parameters=[STATUS]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return LiveApprovalRequest.objects.none()
        return selectors.live_request_list(tenant=self.request.tenant, filters=self.request.query_params)  # type: ignore[attr-defined]


class LiveRequestDetailApi(TenantScopedApi):
    @extend_schema(
        tags=TAG, summary="One live-trading request", parameters=[REQUEST_ID], responses=LiveRequestOutput
    )
    def get(self, request: Request, request_id: str) -> Response:
        found = selectors.live_request_get(tenant=request.tenant, request_id=request_id)  # type: ignore[attr-defined]
        if found is None:
            raise NotFound("Request not found.")
        return Response(LiveRequestOutput(found).data)


# --- staff ------------------------------------------------------------------------------------


class _StaffOnly:
    # Staff decisions through a token need its `admin` scope (TokenScopePermission's default).
    permission_classes = [permissions.IsAuthenticated, permissions.IsAdminUser, TokenScopePermission]


def _staff_request_or_404(request_id: str) -> LiveApprovalRequest:
    found = selectors.staff_live_request_get(request_id=request_id)
    if found is None:
        raise NotFound("Request not found.")
    return found


class StaffLiveRequestListApi(_StaffOnly, generics.ListAPIView):
    serializer_class = StaffLiveRequestOutput

    @extend_schema(
        tags=STAFF_TAG, summary="The approval queue (all tenants; staff only)", parameters=[STATUS]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return LiveApprovalRequest.objects.none()
        return selectors.staff_live_request_list(status=self.request.query_params.get("status"))


class StaffLiveRequestDetailApi(_StaffOnly, APIView):
    @extend_schema(
        tags=STAFF_TAG,
        summary="A request with its code version, config, track record and backtests (staff only)",
        parameters=[REQUEST_ID],
        responses=StaffLiveRequestDetailOutput,
    )
    def get(self, request: Request, request_id: str) -> Response:
        return Response(StaffLiveRequestDetailOutput(_staff_request_or_404(request_id)).data)


class _StaffDecisionApi(_StaffOnly, APIView):
    """POST a staff decision with its reason; subclasses name the service (and carry its schema)."""

    decision: Callable[..., Any]

    def post(self, request: Request, request_id: str) -> Response:
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = type(self).decision(
            request=_staff_request_or_404(request_id),
            actor=request.user,
            reason=data.validated_data["reason"],
        )
        decided = getattr(result, "request", result)  # revoke returns an outcome around it
        found = selectors.staff_live_request_get(request_id=decided.pk)
        return Response(StaffLiveRequestOutput(found).data)


class StaffApproveApi(_StaffDecisionApi):
    decision = staticmethod(services.live_request_approve)

    @extend_schema(
        tags=STAFF_TAG,
        summary="Approve: creates the live instance (observe) bound to the version + config",
        parameters=[REQUEST_ID],
        request=DecisionInput,
        responses={200: StaffLiveRequestOutput, 409: CONFLICT},
    )
    def post(self, request: Request, request_id: str) -> Response:
        return super().post(request, request_id)


class StaffRejectApi(_StaffDecisionApi):
    decision = staticmethod(services.live_request_reject)

    @extend_schema(
        tags=STAFF_TAG,
        summary="Reject a pending request (reason required)",
        parameters=[REQUEST_ID],
        request=DecisionInput,
        responses={200: StaffLiveRequestOutput, 409: CONFLICT},
    )
    def post(self, request: Request, request_id: str) -> Response:
        return super().post(request, request_id)


class StaffRevokeApi(_StaffDecisionApi):
    decision = staticmethod(services.live_request_revoke)

    @extend_schema(
        tags=STAFF_TAG,
        summary="Revoke an approval (reason required); the live instance is paused at once",
        parameters=[REQUEST_ID],
        request=DecisionInput,
        responses={200: StaffLiveRequestOutput, 409: CONFLICT},
    )
    def post(self, request: Request, request_id: str) -> Response:
        return super().post(request, request_id)
