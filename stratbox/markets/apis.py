"""Markets API: the list of markets with their latest quote (read-only, the same for every tenant)."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, generics, serializers

from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_get, quotes_get_many
from stratbox.markets.selectors import market_get, market_list
from tenants.scoping import TenantScopedMixin


class MarketOutput(serializers.ModelSerializer):
    code = serializers.CharField(read_only=True)
    quote = serializers.SerializerMethodField()

    class Meta:
        model = Market
        fields = [
            "id",
            "code",
            "venue",
            "symbol",
            "name",
            "venue_symbol",
            "status",
            "trading_hours",
            "tick_size",
            "lot_size",
            "feed",
            "active",
            "quote",
        ]
        read_only_fields = fields

    def get_quote(self, obj: Market) -> dict[str, Any] | None:
        quotes = self.context.get("quotes")
        return quotes.get(obj.pk) if quotes is not None else quote_get(obj.pk)


class MarketListApi(TenantScopedMixin, generics.ListAPIView):
    serializer_class = MarketOutput
    filterset_fields = ["venue", "active", "feed"]

    def get_queryset(self) -> Any:
        return market_list(search=self.request.query_params.get("search", ""))

    def list(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        rows = list(page if page is not None else queryset)
        serializer = self.get_serializer(
            rows,
            many=True,
            context={**self.get_serializer_context(), "quotes": quotes_get_many(m.pk for m in rows)},
        )
        return (
            self.get_paginated_response(serializer.data)
            if page is not None
            else generics.Response(serializer.data)
        )


class MarketDetailApi(TenantScopedMixin, generics.RetrieveAPIView):
    serializer_class = MarketOutput

    def get_object(self) -> Any:
        market = market_get(market_id=self.kwargs["market_id"])
        if market is None:
            raise exceptions.NotFound("No such market.")
        return market
