"""Reads for markets (shared by every tenant: markets hold no tenant data)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet

from stratbox.markets.models import Bar, Market


def market_list(*, search: str = "") -> QuerySet[Market]:
    """Every market; `search` matches symbol, name, the venue's own symbol or the venue (case-insensitive)."""
    markets = Market.objects.all()
    search = search.strip()[:64]
    if search:
        markets = markets.filter(
            Q(symbol__icontains=search)
            | Q(name__icontains=search)
            | Q(venue_symbol__icontains=search)
            | Q(venue__iexact=search)
        )
    return markets


def market_get(*, market_id: int) -> Market | None:
    return Market.objects.filter(pk=market_id).first()


def bar_list(*, market: Market, interval_seconds: int = 60) -> QuerySet[Bar]:
    return Bar.objects.filter(market=market, interval_seconds=interval_seconds).order_by("ts")


def bar_ranges(*, interval_seconds: int = 60) -> dict[int, tuple[Any, Any, int]]:
    """(first ts, last ts, count) of the stored bars of every market that has some: one query."""

    rows = (
        Bar.objects.filter(interval_seconds=interval_seconds)
        .values("market_id")
        .annotate(first=Min("ts"), last=Max("ts"), n=Count("id"))
    )
    return {row["market_id"]: (row["first"], row["last"], row["n"]) for row in rows}
