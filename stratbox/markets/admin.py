"""Admin for markets and stored bars (staff manage the shared market list)."""

from __future__ import annotations

from django.contrib import admin

from stratbox.markets.models import Bar, Market


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = [
        "venue",
        "symbol",
        "feed",
        "tick_size",
        "lot_size",
        "sim_start_price",
        "sim_volatility",
        "active",
    ]
    list_filter = ["venue", "feed", "active"]
    search_fields = ["venue", "symbol"]


@admin.register(Bar)
class BarAdmin(admin.ModelAdmin):
    list_display = ["market", "ts", "interval_seconds", "open", "high", "low", "close", "volume"]
    list_filter = ["market", "interval_seconds"]
    date_hierarchy = "ts"
    list_select_related = ["market"]
