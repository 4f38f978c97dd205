"""Writes for backtests: create (from a version or an instance's version + config), cancel.

The run itself lives in :mod:`stratbox.backtests.runner` (called by the Celery task).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sandbox.schema import apply_config
from stratbox.backtests.bars import market_bars_count
from stratbox.backtests.csvbars import BarColumns
from stratbox.backtests.datasets import DatasetInvalid, dataset_import, dataset_store
from stratbox.backtests.events import progress_publish
from stratbox.backtests.fillmodel import broker_params_for
from stratbox.backtests.models import Backtest, BacktestSource, BacktestStatus, BarDataset
from stratbox.backtests.runner import cancel_flag_set
from stratbox.backtests.tasks import backtest_run_task
from stratbox.instances.models import StrategyInstance
from stratbox.markets.models import Market
from stratbox.trading.venue_accounts import venue_bars_fetch
from strategies_store.models import StrategyVersion
from tenants.errors import ApplicationError, Conflict
from tenants.models import Tenant
from tenants.plans import plan_get
from tenants.services import audit_record

DEFAULT_CHUNK_BARS = 50_000
MAX_BARS = 5_000_000


class BacktestInvalid(ApplicationError):
    """Bad input (HTTP 400); ``errors`` maps a field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(message="; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors=errors)


@dataclass
class BarsSpec:
    """Where the bars come from: a market + [start, end) of stored bars, a tenant's stored dataset
    (an imported CSV), or parsed CSV columns (stored as a dataset when the backtest is created)."""

    market: Market | None = None
    start: datetime | None = None
    end: datetime | None = None
    interval_seconds: int = 60
    dataset: BarDataset | None = None
    csv_bars: BarColumns | None = None
    csv_filename: str = ""
    csv_sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def bars_from_csv(
    raw: bytes,
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    filename: str,
    interval_seconds: int,
    market_code: str,
) -> BarsSpec:
    """The bars of an uploaded CSV, imported as (or found to be) one of the tenant's datasets; bad
    rows are a BacktestInvalid naming `csv`, line by line."""
    try:
        dataset, _created = dataset_import(tenant=tenant, actor=actor, raw=raw, filename=filename)
    except DatasetInvalid as exc:
        raise BacktestInvalid(exc.errors) from exc
    return bars_from_dataset(dataset, interval_seconds=interval_seconds, market_code=market_code)


def bars_from_dataset(dataset: BarDataset, *, interval_seconds: int, market_code: str) -> BarsSpec:
    """The bars of a stored dataset (the caller found it through the tenant-scoped selector)."""
    return BarsSpec(
        dataset=dataset,
        csv_filename=dataset.name,
        csv_sha256=dataset.sha256,
        interval_seconds=interval_seconds,
        extra={"market_code": market_code},
    )


class BacktestQuotaExceeded(ApplicationError):
    """The tenant already has its plan's number of backtests queued or running (HTTP 429)."""

    status = 429
    default_code = "BACKTEST_QUOTA_EXCEEDED"

    def __init__(self, message: str, *, waiting: int, limit: int) -> None:
        self.waiting = waiting
        self.limit = limit
        super().__init__(message=message)


def _enqueue(backtest_id: str) -> None:
    backtest_run_task.delay(backtest_id)


def backtest_create(*, tenant: Tenant, bars: BarsSpec, **kwargs: Any) -> Backtest:
    """Create a queued backtest (below). A venue market's missing bars are fetched from the venue first,
    outside the transaction (nothing is locked while the venue answers) and stored once for everyone."""
    if bars.csv_bars is None and bars.market is not None and bars.start is not None and bars.end is not None:
        if bars.start < bars.end:
            venue_bars_fetch(
                tenant=tenant,
                market=bars.market,
                interval_seconds=bars.interval_seconds,
                start=bars.start,
                end=bars.end,
            )
    return _backtest_create(tenant=tenant, bars=bars, **kwargs)


@transaction.atomic
def _backtest_create(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    bars: BarsSpec,
    version: StrategyVersion | None = None,
    instance: StrategyInstance | None = None,
    config: dict[str, Any] | None = None,
    starting_capital: Decimal | None = None,
    slippage_bps: float | None = None,
    fee_bps: float | None = None,
    chunk_bars: int | None = None,
    name: str = "",
    fill_timing: str | None = None,
    max_volume_fraction: float | None = None,
) -> Backtest:
    """Create a queued backtest and enqueue its run after commit.

    With ``instance`` ("reuse instance config") the instance's version, config and capital
    allocation are snapshotted; an explicit ``config`` is not allowed alongside it.
    """
    errors: dict[str, list[str]] = {}
    if (version is None) == (instance is None):
        raise BacktestInvalid({"version": ["give exactly one of version or instance"]})
    # The plan's quota of unfinished backtests, counted under the tenant's row lock (no race).
    plan = plan_get(tenant)
    list(Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk", flat=True))
    unfinished = Backtest.objects.filter(
        tenant=tenant, status__in=(BacktestStatus.QUEUED, BacktestStatus.RUNNING)
    ).count()
    if unfinished >= plan.backtests_queued:
        raise BacktestQuotaExceeded(
            f"{unfinished} backtests of this tenant are queued or running; the {plan.name} plan allows "
            f"{plan.backtests_queued} at once. Wait for one to finish or cancel one.",
            waiting=unfinished,
            limit=plan.backtests_queued,
        )
    if instance is not None:
        if instance.tenant_id != tenant.pk:  # selectors already scope; this is a second lock on the door
            raise BacktestInvalid({"instance": ["not found"]})
        version = instance.version
        raw_config = dict(instance.config)
        if starting_capital is None:
            starting_capital = instance.total_capital
    else:
        raw_config = dict(config or {})
    assert version is not None
    clean, config_errors = apply_config(version.config_schema or {}, raw_config)
    for name_, msg in config_errors.items():
        errors.setdefault(f"config.{name_}" if name_ != "__all__" else "config", []).append(msg)
    capital = Decimal(starting_capital) if starting_capital is not None else Decimal("10000.00")
    if capital <= 0:
        errors.setdefault("starting_capital", []).append("must be > 0")
    if bars.csv_bars is not None and bars.dataset is None:  # columns handed in by trusted code
        sha = bars.csv_sha256 or hashlib.sha256(bars.csv_bars.pack()).hexdigest()
        bars.dataset, _ = dataset_store(
            tenant=tenant, actor=actor, cols=bars.csv_bars, sha256=sha, filename=bars.csv_filename
        )
    if bars.dataset is not None:
        # Locked until commit, so a concurrent `dataset_delete` cannot remove the bars of a new run.
        if bars.dataset.tenant_id != tenant.pk or not (
            BarDataset.objects.select_for_update().filter(pk=bars.dataset.pk, tenant=tenant).exists()
        ):
            errors.setdefault("dataset", []).append("not found")
    elif bars.market is None:
        errors.setdefault("market", []).append("give a market and a date range, a dataset, or upload a CSV")
    else:
        if bars.start is None or bars.end is None or bars.start >= bars.end:
            errors.setdefault("end", []).append("end must be after start")
        else:
            total = market_bars_count(
                market_id=bars.market.pk,
                interval_seconds=bars.interval_seconds,
                start=bars.start,
                end=bars.end,
            )
            if total == 0:
                errors.setdefault("start", []).append(
                    f"no stored {bars.interval_seconds}s bars of {bars.market.code} in this range"
                )
            elif total > MAX_BARS:
                errors.setdefault("end", []).append(f"{total} bars is more than {MAX_BARS}")
    if errors:
        raise BacktestInvalid(errors)
    bars_total = bars.dataset.rows if bars.dataset is not None else total
    definition = version.definition
    params = broker_params_for(
        capital=capital,
        slippage_bps=slippage_bps,
        fee_bps=fee_bps,
        instance=instance,
        fill_timing=fill_timing,
        max_volume_fraction=max_volume_fraction,
    )
    backtest = Backtest.objects.create(
        tenant=tenant,
        name=name or f"{definition.key} v{version.number}",
        version=version,
        version_sha256=version.sha256,
        strategy_key=definition.key,
        style=definition.style,
        config=clean,
        instance=instance,
        starting_capital=capital,
        broker_params=params,
        source=BacktestSource.CSV if bars.dataset is not None else BacktestSource.BARS,
        market=bars.market,
        market_code=bars.market.code if bars.market else bars.extra.get("market_code", "CSV"),
        start=bars.start,
        end=bars.end,
        interval_seconds=bars.interval_seconds,
        csv_filename=bars.csv_filename[:200],
        csv_sha256=bars.csv_sha256,
        dataset=bars.dataset,
        chunk_bars=chunk_bars or DEFAULT_CHUNK_BARS,
        bars_total=bars_total,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="backtest.create",
        target=backtest,
        after={
            "version": str(version.pk),
            "sha256": version.sha256,
            "config": clean,
            "source": backtest.source,
            "market": backtest.market_code,
            "bars": bars_total,
        },
    )
    backtest_id = str(backtest.pk)
    transaction.on_commit(lambda: _enqueue(backtest_id))
    return backtest


def csv_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BacktestNotCancellable(Conflict):
    """The backtest already finished (HTTP 409): nothing to cancel."""

    default_code = "BACKTEST_FINISHED"


@transaction.atomic
def backtest_cancel(*, backtest: Backtest, actor: AbstractBaseUser | None) -> Backtest:
    """Cancel a queued run at once; stop a running one within a second (its runner watches a Redis
    flag and kills the chunk's sandbox host, see `runner._CancelWatch`)."""
    bt = Backtest.objects.select_for_update().get(pk=backtest.pk)
    if bt.is_finished:
        raise BacktestNotCancellable(message=f"the backtest already {bt.status}")
    now = timezone.now()
    before = bt.status
    bt.cancel_requested_at = bt.cancel_requested_at or now
    fields = ["cancel_requested_at"]
    if bt.status == BacktestStatus.QUEUED:
        bt.status = BacktestStatus.CANCELLED
        bt.finished_at = now
        fields += ["status", "finished_at"]
    bt.save(update_fields=fields)
    audit_record(
        tenant=bt.tenant,
        actor=actor,
        action="backtest.cancel",
        target=bt,
        before={"status": before},
        after={"status": bt.status},
    )
    if bt.status == BacktestStatus.RUNNING:
        transaction.on_commit(lambda: cancel_flag_set(str(bt.pk)))
    if bt.status == BacktestStatus.CANCELLED:
        transaction.on_commit(lambda: progress_publish(bt))
    return bt
