"""Live accounts against their venues: the discrepancies the reconciler found, and an account's last
reconcile with its user stream's health. Tenant-scoped: another tenant's account is a 404."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.engine.models import VenueDiscrepancy
from stratbox.engine.selectors import VenueDiscrepancyFilter, account_reconcile_get, venue_discrepancy_list
from stratbox.trading.venue_streams import user_stream_health
from tenants.scoping import TenantScopedApi, TenantScopedMixin, not_found


class VenueDiscrepancyOutput(serializers.ModelSerializer):
    account = serializers.UUIDField(source="account_id", read_only=True)

    class Meta:
        model = VenueDiscrepancy
        fields = ["id", "account", "kind", "subject", "ours", "theirs", "action", "paused_instances", "at"]


@extend_schema(tags=["accounts"], summary="Discrepancies between the ledger and the venues (newest first)")
class VenueDiscrepancyListApi(TenantScopedMixin, ListAPIView):
    serializer_class = VenueDiscrepancyOutput
    # The selector's own FilterSet (`?account=`, `?kind=`), applied by the backend so that OpenAPI
    # documents the filters and their 400s; the selector scopes to the tenant.
    filter_backends = [DjangoFilterBackend]
    filterset_class = VenueDiscrepancyFilter

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return VenueDiscrepancy.objects.none()
        return venue_discrepancy_list(tenant=self.request.tenant)  # type: ignore[attr-defined]


AccountReconcileOutput = inline_serializer(
    name="AccountReconcile",
    fields={
        "account": serializers.UUIDField(),
        "last_reconcile_at": serializers.DateTimeField(allow_null=True),
        "status": serializers.CharField(allow_null=True),
        "message": serializers.CharField(),
        "summary": serializers.DictField(),
        "user_stream": serializers.DictField(allow_null=True),
    },
)


class AccountReconcileApi(TenantScopedApi):
    @extend_schema(
        tags=["accounts"], responses=AccountReconcileOutput, summary="A live account's last reconcile"
    )
    def get(self, request: Request, account_id: str) -> Response:
        found = account_reconcile_get(tenant=request.tenant, account_id=account_id)  # type: ignore[attr-defined]
        if found is None:
            raise not_found("No such account.")
        account, last = found
        return Response(
            {
                "account": str(account.pk),
                "last_reconcile_at": last.last_at if last else None,
                "status": last.status if last else None,
                "message": last.message if last else "",
                "summary": last.summary if last else {},
                "user_stream": user_stream_health(account.pk),
            }
        )
