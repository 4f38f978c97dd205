"""Backtest runs, their uploaded bars and their trades.

A backtest is immutable in what it ran (version, sha256, config, capital, broker parameters,
source) — that is its provenance; only status, progress and results are written after creation,
and only by the backtest task (or the cancel service).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from stratbox.instances.models import StrategyInstance
from stratbox.markets.models import Market
from strategies_store.models import StrategyVersion
from tenants.models import Tenant


class BacktestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (BacktestStatus.SUCCEEDED, BacktestStatus.FAILED, BacktestStatus.CANCELLED)


class BacktestSource(models.TextChoices):
    BARS = "bars", "Stored bars of a market"
    CSV = "csv", "Uploaded CSV"


class Backtest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="backtests")
    name = models.CharField(max_length=120, blank=True)
    # --- provenance: what ran (copied at creation; never changed)
    version = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="backtests")
    version_sha256 = models.CharField(max_length=64)
    strategy_key = models.CharField(max_length=64)
    style = models.CharField(max_length=16)
    config = models.JSONField(
        default=dict, blank=True, help_text="config snapshot with schema defaults applied"
    )
    # Set when created with "reuse instance config"; the snapshot above is what counts.
    instance = models.ForeignKey(
        StrategyInstance, on_delete=models.SET_NULL, null=True, blank=True, related_name="backtests"
    )
    starting_capital = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("10000.00"))
    broker_params = models.JSONField(default=dict, blank=True, help_text="the paper fill model's parameters")
    # --- the bars
    source = models.CharField(max_length=8, choices=BacktestSource.choices)
    market = models.ForeignKey(Market, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    market_code = models.CharField(max_length=100, blank=True)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    interval_seconds = models.PositiveIntegerField(default=60)
    csv_filename = models.CharField(max_length=200, blank=True)
    csv_sha256 = models.CharField(max_length=64, blank=True)
    # The stored bars a CSV run reads (imported once, reusable); older runs kept an upload instead.
    # A dataset is deleted only while no run of it is unfinished (`dataset_delete`); finished runs
    # keep their results and provenance (csv_filename, csv_sha256).
    dataset = models.ForeignKey(
        "BarDataset", on_delete=models.SET_NULL, null=True, blank=True, related_name="backtests"
    )
    chunk_bars = models.PositiveIntegerField(default=50_000)
    # --- lifecycle
    status = models.CharField(max_length=10, choices=BacktestStatus.choices, default=BacktestStatus.QUEUED)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    bars_done = models.PositiveIntegerField(default=0)
    bars_total = models.PositiveIntegerField(default=0)
    bars_per_s = models.FloatField(null=True, blank=True)
    eta_s = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    # --- results (metrics use every bar; the stored curve is downsampled)
    final_equity = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    pnl = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    total_return = models.FloatField(null=True, blank=True)
    win_rate = models.FloatField(null=True, blank=True)
    max_drawdown = models.FloatField(null=True, blank=True)
    sharpe = models.FloatField(null=True, blank=True)
    sortino = models.FloatField(null=True, blank=True)
    exposure = models.FloatField(null=True, blank=True)
    num_trades = models.PositiveIntegerField(null=True, blank=True)
    equity_curve = models.JSONField(
        default=list, blank=True, help_text="[[ts, equity], ...], <= 2,000 points"
    )
    metrics = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"backtest {self.id} ({self.strategy_key}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class BacktestUpload(models.Model):
    """The bars of an uploaded CSV, stored packed (kept apart so listing backtests never loads them)."""

    backtest = models.OneToOneField(
        Backtest, on_delete=models.CASCADE, primary_key=True, related_name="upload"
    )
    rows = models.PositiveIntegerField()
    bars = models.BinaryField(help_text="zlib(float64 columns ts,open,high,low,close,volume)")

    def __str__(self) -> str:
        return f"{self.rows} uploaded bars of {self.backtest_id}"


class BacktestTrade(models.Model):
    """One closed (or, at the end of the data, still open) round trip of a backtest."""

    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="trades")
    seq = models.PositiveIntegerField()
    side = models.CharField(max_length=8)
    qty = models.FloatField()
    entry_ts = models.FloatField()
    entry_price = models.FloatField()
    exit_ts = models.FloatField(null=True, blank=True)
    exit_price = models.FloatField(null=True, blank=True)
    fees = models.FloatField(default=0.0)
    pnl = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    exit_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["backtest", "seq"]
        constraints = [models.UniqueConstraint(fields=["backtest", "seq"], name="uniq_backtest_trade_seq")]

    def __str__(self) -> str:
        return f"trade {self.seq} of {self.backtest_id}"


class BarDataset(models.Model):
    """Bars imported from a CSV, stored once per tenant and reusable by any later backtest.

    The same file (by sha256) imported again by the same tenant is the same dataset. Its bars live
    in :class:`DatasetBar`, written with one ``COPY`` and read back with one binary ``COPY``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="bar_datasets")
    name = models.CharField(max_length=200, help_text="the uploaded file's name")
    sha256 = models.CharField(max_length=64, help_text="of the uploaded file's bytes")
    rows = models.PositiveIntegerField()
    first_ts = models.DateTimeField()
    last_ts = models.DateTimeField()
    interval_seconds = models.PositiveIntegerField(help_text="the median spacing of the bars")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "sha256"], name="uniq_dataset_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.rows} bars)"


class DatasetBlock(models.Model):
    """Up to ``BLOCK_BARS`` consecutive bars of a dataset, one float8[] per column, exactly as parsed.

    Blocks, not a row per bar: a million bars are a hundred rows, so the bulk load writes a
    hundred index entries instead of a million (the index dominated a row-per-bar COPY), and a
    run reads them back as a few large arrays. ``SELECT unnest(ts), unnest(close) ...`` still
    reads them bar by bar in SQL.
    """

    BLOCK_BARS = 10_000

    pk = models.CompositePrimaryKey("dataset", "seq")
    dataset = models.ForeignKey(BarDataset, on_delete=models.CASCADE, related_name="blocks", db_index=False)
    seq = models.PositiveIntegerField(help_text="0, 1, 2, ... in time order")
    ts = ArrayField(models.FloatField(), help_text="epoch seconds")
    open = ArrayField(models.FloatField())
    high = ArrayField(models.FloatField())
    low = ArrayField(models.FloatField())
    close = ArrayField(models.FloatField())
    volume = ArrayField(models.FloatField())

    class Meta:
        ordering = ["dataset", "seq"]

    def __str__(self) -> str:
        return f"block {self.seq} of {self.dataset_id}"
