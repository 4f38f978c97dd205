"""Tenant-scoped trading API: accounts, orders, fills, positions (read-only).

Paper accounts are listed/created at `accounts/`; live accounts are created by owners only at
`live-accounts/` (credentials write-only, encrypted at rest).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, generics, permissions
from rest_framework.request import Request
from rest_framework.response import Response

from stratbox.markets.quotes import quotes_get_many
from stratbox.trading import selectors
from stratbox.trading.filters import FillFilter, OrderFilter, PositionFilter
from stratbox.trading.models import Account, AccountKind, Fill, Order, OrderEvent, Position
from stratbox.trading.serializers import (
    AccountInput,
    AccountOutput,
    FillOutput,
    LiveAccountInput,
    OrderDetailOutput,
    OrderEventOutput,
    OrderOutput,
    PositionOutput,
)
from stratbox.trading.services.accounts import account_create
from tenants.scopes import TokenScope
from tenants.scoping import IsTenantOwner, TenantScopedApi, TenantScopedMixin


@extend_schema_view(
    get=extend_schema(tags=["accounts"], summary="List the tenant's accounts"),
    post=extend_schema(
        tags=["accounts"],
        summary="Create a paper account",
        request=AccountInput,
        responses={201: AccountOutput},
    ),
)
class AccountListCreateApi(TenantScopedMixin, generics.ListAPIView):
    write_scope = TokenScope.INSTANCES_WRITE  # paper accounts; live ones need `admin`
    serializer_class = AccountOutput

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return Account.objects.none()
        return selectors.account_list(tenant=self.request.tenant)  # type: ignore[attr-defined]

    def post(self, request: Request) -> Response:
        data = AccountInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_create(tenant=request.tenant, actor=request.user, **data.validated_data)  # type: ignore[attr-defined]
        return Response(AccountOutput(account).data, status=201)


class LiveAccountCreateApi(TenantScopedApi):
    """Owners create live accounts; the credentials are encrypted and never returned."""

    permission_classes = [permissions.IsAuthenticated, IsTenantOwner]

    @extend_schema(
        tags=["accounts"],
        summary="Create a live account (owners only)",
        request=LiveAccountInput,
        responses={201: AccountOutput},
    )
    def post(self, request: Request) -> Response:
        data = LiveAccountInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = account_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            kind=AccountKind.LIVE,
            **data.validated_data,
        )
        return Response(AccountOutput(account).data, status=201)


class AccountDetailApi(TenantScopedMixin, generics.RetrieveAPIView):
    serializer_class = AccountOutput

    def get_object(self) -> Any:
        account = selectors.account_get(tenant=self.request.tenant, account_id=self.kwargs["account_id"])  # type: ignore[attr-defined]
        if account is None:
            raise exceptions.NotFound("No such account.")
        return account


class OrderListApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = OrderOutput
    filterset_class = OrderFilter
    ordering_fields = ["created_at", "filled_at"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return Order.objects.none()
        return selectors.order_list(tenant=self.request.tenant)  # type: ignore[attr-defined]


def _order_or_404(request: Any, order_id: Any) -> Order:
    order = selectors.order_get(tenant=request.tenant, order_id=order_id)
    if order is None:  # another tenant's order is exactly as absent as one that never existed
        raise exceptions.NotFound("No such order.")
    return order


class OrderDetailApi(TenantScopedMixin, generics.RetrieveAPIView):
    """One order with its status changes (`events`, oldest first)."""

    serializer_class = OrderDetailOutput

    def get_object(self) -> Any:
        return _order_or_404(self.request, self.kwargs["order_id"])

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        order = self.get_object()
        events = selectors.order_event_list(tenant=request.tenant, order=order)  # type: ignore[attr-defined]
        return Response(OrderDetailOutput(order, context={"events": events}).data)


class OrderEventListApi(TenantScopedMixin, generics.ListAPIView):
    """An order's status changes, oldest first."""

    serializer_class = OrderEventOutput
    pagination_class = None  # a handful per order

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return OrderEvent.objects.none()
        order = _order_or_404(self.request, self.kwargs["order_id"])
        return selectors.order_event_list(tenant=self.request.tenant, order=order)  # type: ignore[attr-defined]


class FillListApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = FillOutput
    filterset_class = FillFilter
    ordering_fields = ["ts"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return Fill.objects.none()
        return selectors.fill_list(tenant=self.request.tenant)  # type: ignore[attr-defined]


class PositionListApi(TenantScopedMixin, generics.ListAPIView):
    """Positions with unrealized P&L at the latest quote (null when the market has no quote)."""

    serializer_class = PositionOutput
    filterset_class = PositionFilter
    ordering_fields = ["opened_at", "closed_at"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request tenant
            return Position.objects.none()
        return selectors.position_list(tenant=self.request.tenant)  # type: ignore[attr-defined]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        page = getattr(self, "_page_market_ids", None)
        quotes = quotes_get_many(page or [])
        context["marks"] = {mid: Decimal(str(q["price"])) for mid, q in quotes.items()}
        return context

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        self._page_market_ids = [p.market_id for p in (page if page is not None else queryset)]
        return page
