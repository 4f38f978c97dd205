"""API shapes for accounts, orders, fills and positions (output) and account creation (input).

Account credentials are write-only: `AccountOutput` has `has_credentials` and a masked hint, never
the ciphertext or the secrets.
"""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from stratbox.trading.models import Account, Fill, Order, Position
from stratbox.trading.selectors import position_unrealized_pnl


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
            "max_volume_fraction",
            "broker",
            "has_credentials",
            "credentials_hint",
            "created_at",
        ]
        read_only_fields = fields

    has_credentials = serializers.BooleanField(read_only=True)


class AccountInput(serializers.Serializer):
    """Create a paper account (the kind is not client-settable here: live accounts have their own endpoint)."""

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
    max_volume_fraction = serializers.DecimalField(
        max_digits=7,
        decimal_places=6,
        min_value=Decimal("0.000001"),
        max_value=Decimal("1"),
        required=False,
        allow_null=True,
        help_text="partial fills: one order fills at most this fraction of a quote's volume "
        "(quotes without book sizes); null: every fill whole",
    )


class LiveAccountInput(serializers.Serializer):
    """Create a live account. `credentials` is write-only: encrypted at rest, never returned."""

    name = serializers.CharField(max_length=80, trim_whitespace=True)
    starting_balance = serializers.DecimalField(
        max_digits=18,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000000000"),
        help_text="the cash the platform may treat as available (a real adapter syncs it)",
    )
    currency = serializers.RegexField(r"^[A-Z]{3,8}$", default="USD")
    broker = serializers.RegexField(
        r"^[a-z0-9][a-z0-9_.:-]{0,39}$", help_text="the exchange/broker adapter, e.g. ccxt:binance"
    )
    credentials = serializers.DictField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False),
        required=False,
        allow_empty=False,
        write_only=True,
        help_text="exchange API key fields (name -> secret); encrypted at rest, never returned",
    )


class OrderOutput(serializers.ModelSerializer):
    market = serializers.CharField(source="market.code")
    version_number = serializers.IntegerField(
        source="version.number",
        read_only=True,
        allow_null=True,
        help_text="The strategy version that placed it.",
    )

    class Meta:
        model = Order
        fields = [
            "id",
            "instance",
            "account",
            "market",
            "client_order_id",
            "version",
            "version_number",
            "side",
            "type",
            "qty",
            "limit_price",
            "stop_price",
            "tif",
            "expires_at",
            "reduce_only",
            "bracket",
            "parent",
            "leg",
            "filled_qty",
            "venue_order_id",
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
        marks: dict[int, Decimal] = self.context.get("marks", {})
        if obj.closed_at is not None:
            return "0"
        mark = marks.get(obj.market_id)
        return str(position_unrealized_pnl(obj, mark)) if mark is not None else None
