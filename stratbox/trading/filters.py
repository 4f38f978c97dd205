"""Query-string filters of the trading list endpoints (the querysets are already tenant-scoped)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from stratbox.trading.models import Fill, Order, OrderSide, OrderStatus, Position


class OrderFilter(django_filters.FilterSet):
    instance = django_filters.UUIDFilter(field_name="instance_id")
    account = django_filters.UUIDFilter(field_name="account_id")
    status = django_filters.ChoiceFilter(choices=OrderStatus.choices)
    side = django_filters.ChoiceFilter(choices=OrderSide.choices)
    is_shadow = django_filters.BooleanFilter()
    deny_code = django_filters.CharFilter()

    class Meta:
        model = Order
        fields = ["instance", "account", "status", "side", "is_shadow", "deny_code"]


class FillFilter(django_filters.FilterSet):
    instance = django_filters.UUIDFilter(field_name="instance_id")
    order = django_filters.UUIDFilter(field_name="order_id")
    account = django_filters.UUIDFilter(field_name="account_id")
    side = django_filters.ChoiceFilter(choices=OrderSide.choices)
    is_shadow = django_filters.BooleanFilter()

    class Meta:
        model = Fill
        fields = ["instance", "order", "account", "side", "is_shadow"]


class PositionFilter(django_filters.FilterSet):
    instance = django_filters.UUIDFilter(field_name="instance_id")
    account = django_filters.UUIDFilter(field_name="account_id")
    status = django_filters.ChoiceFilter(
        choices=[("open", "Open"), ("closed", "Closed")], method="filter_status"
    )
    is_shadow = django_filters.BooleanFilter()

    class Meta:
        model = Position
        fields = ["instance", "account", "status", "is_shadow"]

    def filter_status(self, queryset: QuerySet[Position], name: str, value: str) -> QuerySet[Position]:
        return queryset.filter(closed_at__isnull=(value == "open"))
