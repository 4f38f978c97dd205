"""Reads for strategy instances. Every selector takes the tenant: another tenant's id is never found."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import django_filters
from django.db.models import QuerySet

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.models import Market
from tenants.errors import ApplicationError, ErrorMessage
from tenants.models import Tenant

ORDERING_FIELDS = ("name", "created_at", "updated_at", "mode", "frequency_seconds", "total_capital")


class InstanceFilter(django_filters.FilterSet):
    """Query-string filters of the instance list (`?mode=observe&strategy=sma-crossover`)."""

    mode = django_filters.ChoiceFilter(choices=Mode.choices)
    strategy = django_filters.CharFilter(field_name="strategy__key", help_text="strategy key")
    market = django_filters.NumberFilter(field_name="market_id", help_text="market id")
    account = django_filters.UUIDFilter(field_name="account_id", help_text="account id")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")
    ordering = django_filters.OrderingFilter(
        fields=ORDERING_FIELDS, help_text="prefix with - for descending, e.g. -created_at"
    )

    class Meta:
        model = StrategyInstance
        fields = ["mode", "strategy", "market", "account", "name"]


def _base_queryset() -> QuerySet[StrategyInstance]:
    return StrategyInstance.objects.select_related("strategy", "version", "account", "market", "tenant")


def instance_list(*, tenant: Tenant, filters: Mapping[str, Any] | None = None) -> QuerySet[StrategyInstance]:
    """The tenant's instances, filtered; an invalid filter value is a 400 naming the parameter."""
    queryset = _base_queryset().filter(tenant=tenant)
    if not filters:
        return queryset
    filterset = InstanceFilter(data=filters, queryset=queryset)
    if not filterset.is_valid():
        # as_data keeps each error's code; str() of a Django error (its messages in brackets) is the
        # text this 400 has always carried.
        raise ApplicationError(
            errors={
                field: [ErrorMessage(str(error), error.code or "invalid") for error in errors]
                for field, errors in filterset.errors.as_data().items()
            }
        )
    return filterset.qs


def instance_get(*, tenant: Tenant, instance_id: uuid.UUID | str) -> StrategyInstance | None:
    """One of the tenant's instances, or None (also for malformed ids and other tenants' ids).

    The one tenant-scoped instance lookup of every app (API, pages, engine, governance, backtests):
    it brings the strategy, the version and its definition, the account, the market and the tenant.
    """
    try:
        pk = uuid.UUID(str(instance_id))
    except (ValueError, TypeError, AttributeError):
        return None
    return _base_queryset().select_related("version__definition").filter(tenant=tenant, pk=pk).first()


def account_for_instance(*, tenant: Tenant, account_id: object) -> Any | None:
    """The tenant's own account with this id, else None (also for another tenant's account).

    `trading` sits above `instances` in the layering, so the model is reached through the
    foreign key rather than imported.
    """
    try:
        pk = uuid.UUID(str(account_id))
    except (ValueError, TypeError, AttributeError):
        return None
    account_model = StrategyInstance._meta.get_field("account").related_model
    return account_model._default_manager.filter(tenant=tenant, pk=pk).first()


def market_for_instance(*, market_id: object) -> Market | None:
    """The market with this id (active or not: the caller explains an inactive one), else None."""
    if isinstance(market_id, bool):
        return None
    try:
        pk = int(str(market_id))
    except (ValueError, TypeError):
        return None
    return Market.objects.filter(pk=pk).first()
