"""Live accounts against their venues: the discrepancies the reconciler found, an account's last
reconcile with its user stream's health, the venue's balances and positions as the reconciler last
read them with the live orders and their venue ids, and "reconcile now". Tenant-scoped: another
tenant's account is a 404. Nothing here calls the venue (credentials stay in the workers)."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.engine.models import VenueDiscrepancy
from stratbox.engine.selectors import (
    VenueDiscrepancyFilter,
    account_reconcile_get,
    account_venue_get,
    live_account_get,
    venue_discrepancy_list,
)
from stratbox.engine.venue_requests import account_reconcile_request
from stratbox.trading.models import Order
from stratbox.trading.venue_streams import user_stream_health
from tenants.scopes import TokenScope
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
    token_scopes = {"POST": TokenScope.INSTANCES_CONTROL}

    @extend_schema(
        tags=["accounts"],
        request=None,
        responses={202: inline_serializer("ReconcileQueued", {"queued": serializers.BooleanField()})},
        summary="Reconcile a live account with its venue now (queued on a worker)",
    )
    def post(self, request: Request, account_id: str) -> Response:
        account = live_account_get(tenant=request.tenant, account_id=account_id)  # type: ignore[attr-defined]
        if account is None:
            raise not_found("No such live account.")
        queued = account_reconcile_request(account=account, actor=request.user)
        return Response({"queued": queued}, status=202)

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


class LiveOrderOutput(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code")
    instance = serializers.UUIDField(source="instance_id")

    class Meta:
        model = Order
        fields = [
            "id",
            "instance",
            "market",
            "client_order_id",
            "venue_client_order_id",
            "venue_order_id",
            "side",
            "type",
            "qty",
            "limit_price",
            "filled_qty",
            "fill_price",
            "status",
            "deny_code",
            "deny_reason",
            "sent_at",
            "created_at",
            "filled_at",
            "cancelled_at",
        ]
        read_only_fields = fields


_AMOUNTS = serializers.ListField(child=serializers.DictField(child=serializers.CharField()), allow_null=True)

AccountVenueOutput = inline_serializer(
    name="AccountVenue",
    fields={
        "account": inline_serializer(
            name="AccountVenueAccount",
            fields={
                "id": serializers.UUIDField(),
                "name": serializers.CharField(),
                "broker": serializers.CharField(),
                "currency": serializers.CharField(),
                "balance": serializers.DecimalField(max_digits=28, decimal_places=8),
                "has_credentials": serializers.BooleanField(),
                "credentials_hint": serializers.CharField(),
            },
        ),
        "venue": inline_serializer(
            name="AccountVenueInfo",
            fields={
                "label": serializers.CharField(),
                "environment": serializers.CharField(help_text="paper | live | sandbox | simulated"),
                "simulated": serializers.BooleanField(),
            },
        ),
        "last_reconcile": serializers.DictField(allow_null=True),
        "venue_read_at": serializers.DateTimeField(allow_null=True),
        "balances": _AMOUNTS,
        "positions": _AMOUNTS,
        "user_stream": serializers.DictField(),
        "discrepancies": VenueDiscrepancyOutput(many=True),
        "orders": LiveOrderOutput(many=True),
    },
)


class AccountVenueApi(TenantScopedApi):
    @extend_schema(
        tags=["accounts"],
        responses=AccountVenueOutput,
        summary="A live account at its venue: balances and positions as last reconciled, "
        "discrepancies and what was done, live orders with their venue ids, user stream health",
    )
    def get(self, request: Request, account_id: str) -> Response:
        found = account_venue_get(tenant=request.tenant, account_id=account_id)  # type: ignore[attr-defined]
        if found is None:
            raise not_found("No such account.")
        account, last = found.account, found.reconcile
        return Response(
            {
                "account": {
                    "id": str(account.pk),
                    "name": account.name,
                    "broker": account.broker,
                    "currency": account.currency,
                    "balance": str(account.balance),
                    "has_credentials": account.has_credentials,
                    "credentials_hint": account.credentials_hint,
                },
                "venue": {k: found.venue[k] for k in ("label", "environment", "simulated")},
                "last_reconcile": None
                if last is None
                else {
                    "at": last.last_at,
                    "status": last.status,
                    "message": last.message,
                    "summary": last.summary,
                },
                "venue_read_at": last.venue_read_at if last else None,
                "balances": last.venue_balances if last else None,
                "positions": last.venue_positions if last else None,
                "user_stream": found.user_stream,
                "discrepancies": VenueDiscrepancyOutput(found.discrepancies, many=True).data,
                "orders": LiveOrderOutput(found.orders, many=True).data,
            }
        )
