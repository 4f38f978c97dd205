"""Admin: backtests are read-only records (provenance must not be edited)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from stratbox.backtests.models import Backtest


@admin.register(Backtest)
class BacktestAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "tenant",
        "strategy_key",
        "status",
        "market_code",
        "bars_total",
        "total_return",
        "created_at",
    ]
    list_filter = ["status", "source"]
    search_fields = ["id", "strategy_key", "tenant__name", "version_sha256"]
    list_select_related = ["tenant"]
    exclude = ["equity_curve"]

    def get_readonly_fields(self, request: Any, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "equity_curve"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
