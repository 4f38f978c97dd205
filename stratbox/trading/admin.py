"""Admin for the trading ledger. Orders, fills and positions are read-only: only the broker writes them."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from stratbox.trading.models import Account, Fill, Order, OrderEvent, Position


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "kind", "currency", "starting_balance", "balance", "created_at"]
    list_filter = ["kind", "currency"]
    search_fields = ["name", "tenant__name"]
    # Cash moves only through fills; staff can tune the fill model, not the balance. Credentials
    # are write-only: the admin shows whether there are some and the masked hint, never the ciphertext.
    readonly_fields = [
        "balance",
        "has_credentials",
        "credentials_hint",
        "credentials_updated_at",
        "created_at",
    ]
    exclude = ["credentials_ciphertext"]

    @admin.display(boolean=True, description="has credentials")
    def has_credentials(self, obj: Account) -> bool:
        return obj.has_credentials


class OrderEventInline(admin.TabularInline):
    """The order's status changes, oldest first (append-only: never edited here)."""

    model = OrderEvent
    fields = ["at", "from_status", "to_status", "filled_qty", "deny_code", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    inlines = [OrderEventInline]
    list_display = [
        "client_order_id",
        "tenant",
        "instance",
        "market",
        "side",
        "type",
        "qty",
        "status",
        "deny_code",
        "is_shadow",
        "created_at",
    ]
    list_filter = ["status", "side", "type", "is_shadow", "deny_code"]
    search_fields = ["client_order_id", "tenant__name", "instance__name"]
    list_select_related = ["tenant", "instance", "market"]


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = [
        "order",
        "tenant",
        "instance",
        "side",
        "qty",
        "price",
        "fee",
        "realized_pnl",
        "is_shadow",
        "ts",
    ]
    list_filter = ["side", "is_shadow"]
    search_fields = ["order__client_order_id", "tenant__name"]
    list_select_related = ["order", "tenant", "instance"]


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = [
        "instance",
        "tenant",
        "market",
        "is_shadow",
        "qty",
        "avg_price",
        "cost_basis",
        "realized_pnl",
        "opened_at",
        "closed_at",
    ]
    list_filter = ["is_shadow"]
    search_fields = ["instance__name", "tenant__name"]
    list_select_related = ["instance", "tenant", "market"]
