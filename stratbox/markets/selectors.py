"""Reads for markets (shared by every tenant: markets hold no tenant data)."""

from __future__ import annotations

from django.db.models import QuerySet

from stratbox.markets.models import Bar, Market


def market_list() -> QuerySet[Market]:
    return Market.objects.all()


def market_get(*, market_id: int) -> Market | None:
    return Market.objects.filter(pk=market_id).first()


def bar_list(*, market: Market, interval_seconds: int = 60) -> QuerySet[Bar]:
    return Bar.objects.filter(market=market, interval_seconds=interval_seconds).order_by("ts")
