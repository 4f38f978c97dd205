"""API shapes for accounts, orders, fills and positions (output) and account creation (input)."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from stratbox.trading.models import Account, Fill, Order, Position


class AccountOutput(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "kind",
            "currency",
            "starting_balance",
            "balance",
            "slippage_bps",
            "fee_bps",
            "created_at",
        ]
        read_only_fields = fields


class AccountInput(serializers.Serializer):
    name = serializers.CharField(max_length=80, trim_whitespace=True)
    starting_balance = serializers.DecimalField(
        max_digits=18, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("1000000000000")
    )
    currency = serializers.RegexField(r"^[A-Z]{3,8}$", default="USD")
    slippage_bps = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("1000"),
        required=False,
        allow_null=True,
    )
    fee_bps = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        min_value=Decimal("0"),
        max_value=Decimal("1000"),
        required=False,
        allow_null=True,
    )


class OrderOutput(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code")

    class Meta:
        model = Order
        fields = [
            "id",
            "instance",
            "account",
            "market",
            "client_order_id",
            "side",
            "type",
            "qty",
            "limit_price",
            "status",
            "deny_code",
            "deny_reason",
            "is_shadow",
            "tag",
            "est_price",
            "fill_price",
            "fee",
            "created_at",
            "filled_at",
            "cancelled_at",
        ]
        read_only_fields = fields


class FillOutput(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code")
    client_order_id = serializers.CharField(source="order.client_order_id")

    class Meta:
        model = Fill
        fields = [
            "id",
            "order",
            "client_order_id",
            "instance",
            "account",
            "market",
            "position",
            "side",
            "qty",
            "price",
            "fee",
            "realized_pnl",
            "is_shadow",
            "ts",
        ]
        read_only_fields = fields


class PositionOutput(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code")
    status = serializers.SerializerMethodField()
    unrealized_pnl = serializers.SerializerMethodField()

    class Meta:
        model = Position
        fields = [
            "id",
            "instance",
            "account",
            "market",
            "is_shadow",
            "status",
            "qty",
            "avg_price",
            "cost_basis",
            "realized_pnl",
            "unrealized_pnl",
            "fees",
            "opened_at",
            "closed_at",
        ]
        read_only_fields = fields

    def get_status(self, obj: Position) -> str:
        return "open" if obj.closed_at is None else "closed"

    def get_unrealized_pnl(self, obj: Position) -> str | None:
        from stratbox.trading.selectors import position_unrealized_pnl

        marks: dict[int, Decimal] = self.context.get("marks", {})
        if obj.closed_at is not None:
            return "0"
        mark = marks.get(obj.market_id)
        return str(position_unrealized_pnl(obj, mark)) if mark is not None else None
