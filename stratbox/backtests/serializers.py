"""Input and output shapes of the backtests API."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import serializers

from stratbox.backtests.models import Backtest, BacktestTrade, BarDataset
from stratbox.backtests.selectors import backtest_queue_position

MAX_CSV_BYTES = 100 * 1024 * 1024


@extend_schema_field({"type": "object", "additionalProperties": True})
class JsonObjectField(serializers.Field):  # type: ignore[type-arg]
    """A JSON object, given as an object (JSON body) or as a JSON string (multipart form)."""

    default_error_messages = {"invalid": "must be a JSON object"}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = json.loads(data) if data.strip() else {}
            except ValueError:
                self.fail("invalid")
        if not isinstance(data, dict):
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class BacktestCreateInput(serializers.Serializer):
    version = serializers.UUIDField(required=False, help_text="a strategy version of yours or the catalog's")
    instance = serializers.UUIDField(required=False, help_text="reuse this instance's version + config")
    config = JsonObjectField(required=False)
    name = serializers.CharField(required=False, max_length=120, allow_blank=True)
    starting_capital = serializers.DecimalField(
        required=False, max_digits=18, decimal_places=2, min_value=Decimal("1")
    )
    slippage_bps = serializers.FloatField(required=False, min_value=0, max_value=1000)
    fee_bps = serializers.FloatField(required=False, min_value=0, max_value=1000)
    fill_timing = serializers.ChoiceField(
        required=False,
        choices=["signal_close", "next_open"],
        help_text="fill at the signal bar's close (default) or at the next bar's open",
    )
    max_volume_fraction = serializers.FloatField(
        required=False,
        min_value=0.000001,
        max_value=1,
        help_text="partial fills: one order fills at most this fraction of a bar's volume per bar "
        "(default: the instance's paper account's, else no cap)",
    )
    market = serializers.CharField(
        required=False, max_length=100, help_text="market id or code (SIM:BTC/USDT)"
    )
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    interval_seconds = serializers.IntegerField(required=False, default=60, min_value=1, max_value=7 * 86400)
    csv = serializers.FileField(
        required=False,
        help_text="a time column (ts, timestamp, date or datetime; or a leading index column) and "
        "open, high, low, close[, volume]; stored as a dataset for later runs",
    )
    dataset = serializers.UUIDField(required=False, help_text="one of your stored datasets (an imported CSV)")
    chunk_bars = serializers.IntegerField(required=False, min_value=10, max_value=200_000)

    def validate_csv(self, value: Any) -> Any:
        if value.size > MAX_CSV_BYTES:
            raise serializers.ValidationError(f"larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("version" in attrs) == ("instance" in attrs):
            raise serializers.ValidationError({"version": "give exactly one of version or instance"})
        if "instance" in attrs and "config" in attrs:
            raise serializers.ValidationError({"config": "an instance's config is reused; do not send one"})
        if "csv" in attrs and "dataset" in attrs:
            raise serializers.ValidationError({"dataset": "give a CSV or a stored dataset, not both"})
        if "csv" in attrs and "market" in attrs and "start" in attrs:
            raise serializers.ValidationError({"csv": "give a CSV or a market + date range, not both"})
        if "dataset" in attrs and "market" in attrs and "start" in attrs:
            raise serializers.ValidationError(
                {"dataset": "give a dataset or a market + date range, not both"}
            )
        file_bars = "csv" in attrs or "dataset" in attrs
        if not file_bars and "instance" not in attrs:
            for name in ("market", "start", "end"):
                if name not in attrs:
                    raise serializers.ValidationError({name: "required unless a CSV or dataset is given"})
        if not file_bars and "instance" in attrs:
            for name in ("start", "end"):
                if name not in attrs:
                    raise serializers.ValidationError({name: "required unless a CSV or dataset is given"})
        if "start" in attrs and "end" in attrs and attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


class BacktestOutput(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    provenance = serializers.SerializerMethodField()
    results = serializers.SerializerMethodField()

    class Meta:
        model = Backtest
        fields = [
            "id",
            "name",
            "status",
            "strategy_key",
            "style",
            "version",
            "instance",
            "config",
            "starting_capital",
            "broker_params",
            "source",
            "market_code",
            "start",
            "end",
            "interval_seconds",
            "csv_filename",
            "dataset",
            "chunk_bars",
            "progress",
            "error",
            "results",
            "provenance",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, bt: Backtest) -> dict[str, Any]:
        percent = round(100.0 * bt.bars_done / bt.bars_total, 2) if bt.bars_total else 0.0
        return {
            "done": bt.bars_done,
            "total": bt.bars_total,
            "percent": percent,
            "bars_per_s": bt.bars_per_s,
            "eta_s": bt.eta_s,
            "cancel_requested": bt.cancel_requested_at is not None,
            # Where a queued run stands on the shared backtest pool (1 = next); null once it runs.
            "queue_position": backtest_queue_position(backtest=bt),
        }

    def get_error(self, bt: Backtest) -> dict[str, Any] | None:
        if not bt.error_code:
            return None
        return {"code": bt.error_code, "message": bt.error_message, "line": bt.error_line}

    def get_provenance(self, bt: Backtest) -> dict[str, Any]:
        return {
            "version_id": str(bt.version_id),
            "sha256": bt.version_sha256,
            "config": bt.config,
            "broker_params": bt.broker_params,
            "starting_capital": str(bt.starting_capital),
            "csv_sha256": bt.csv_sha256 or None,
        }

    def get_results(self, bt: Backtest) -> dict[str, Any] | None:
        if bt.status != "succeeded":
            return None
        return {
            "final_equity": str(bt.final_equity),
            "pnl": str(bt.pnl),
            "total_return": bt.total_return,
            "win_rate": bt.win_rate,
            "max_drawdown": bt.max_drawdown,
            "sharpe": bt.sharpe,
            "sortino": bt.sortino,
            "exposure": bt.exposure,
            "num_trades": bt.num_trades,
            "open_trades": bt.metrics.get("open_trades", 0),
            "bars": bt.metrics.get("bars"),
            "periods_per_year": bt.metrics.get("periods_per_year"),
        }


class BacktestTradeOutput(serializers.ModelSerializer):
    class Meta:
        model = BacktestTrade
        fields = [
            "seq",
            "side",
            "qty",
            "entry_ts",
            "entry_price",
            "exit_ts",
            "exit_price",
            "fees",
            "pnl",
            "reason",
            "exit_reason",
        ]


class BacktestEquityPointOutput(serializers.Serializer):
    ts = serializers.FloatField()
    equity = serializers.FloatField()


class BacktestMarkerOutput(serializers.Serializer):
    ts = serializers.FloatField()
    price = serializers.FloatField()  # trade prices are floats in the backtest engine (BacktestTrade)
    kind = serializers.ChoiceField(choices=["entry", "exit"])
    side = serializers.CharField()
    seq = serializers.IntegerField()


class BacktestEquityOutput(serializers.Serializer):
    backtest_id = serializers.UUIDField()
    status = serializers.CharField()
    starting_capital = serializers.DecimalField(max_digits=18, decimal_places=2)
    points = serializers.JSONField(help_text="[[ts, equity], ...], downsampled for charts")
    markers = BacktestMarkerOutput(many=True)
    markers_truncated = serializers.BooleanField()


class BacktestCompareOutput(serializers.Serializer):
    a = BacktestOutput()
    b = BacktestOutput()
    diff = serializers.DictField(child=serializers.FloatField(allow_null=True), help_text="b - a per metric")


def paginated(serializer: type[serializers.BaseSerializer]) -> serializers.Serializer:  # type: ignore[type-arg]
    """The OpenAPI shape of a LimitOffsetPagination page of `serializer` (for hand-paginated views)."""
    name = serializer.__name__.removesuffix("Output")
    return inline_serializer(
        name=f"Paginated{name}List",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


class BarDatasetOutput(serializers.ModelSerializer):
    """A stored dataset: what it holds (bar count, time range, spacing), never its bars."""

    bars = serializers.IntegerField(source="rows")

    class Meta:
        model = BarDataset
        fields = ["id", "name", "sha256", "bars", "first_ts", "last_ts", "interval_seconds", "created_at"]


class BarDatasetImportInput(serializers.Serializer):
    csv = serializers.FileField(
        help_text="a time column (ts, timestamp, date or datetime; or a leading index column) and "
        "open, high, low, close[, volume]"
    )

    def validate_csv(self, value: Any) -> Any:
        if value.size > MAX_CSV_BYTES:
            raise serializers.ValidationError(f"larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB")
        return value
