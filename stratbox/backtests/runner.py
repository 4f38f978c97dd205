"""Running one backtest: claim it, stream its bars to the sandbox host in chunks, store the results.

The whole bar loop (strategy + paper fill model) runs inside the tenant's sandbox host; this side
only slices bars, checks the cancel flag between chunks, publishes progress and, at the end,
computes metrics over every bar's equity. No database row lock is held while user code runs.

Idempotent: a run is claimed with a conditional UPDATE (queued -> running); a duplicate delivery
finds it claimed and does nothing. A run whose worker died (no heartbeat for STALE_AFTER) may be
claimed again and starts over.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, connections, transaction
from django.db.models import Q
from django.utils import timezone

from sandbox import ErrorCode, SandboxError
from sandbox.simbroker import SETTLEMENT
from stratbox.backtests import metrics
from stratbox.backtests.bars import market_bars_chunks
from stratbox.backtests.csvbars import BarColumns
from stratbox.backtests.datasets import dataset_bars_chunks
from stratbox.backtests.events import progress_publish
from stratbox.backtests.market_rules import market_rules_for
from stratbox.backtests.models import Backtest, BacktestSource, BacktestStatus, BacktestTrade, BacktestUpload
from stratbox.backtests.sandbox_client import backtest_abort, backtest_chunk, backtest_load, backtest_unload
from stratbox.engine import runtime
from tenants.models import Tenant
from tenants.plans import plan_get

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)
MAX_CURVE_POINTS = 2000


WAITING = "waiting"
CANCEL_KEY = "sbx:bt:cancel:{}"
CANCEL_POLL_SECONDS = 0.1


def cancel_flag_set(backtest_id: str) -> None:
    """Tell the worker running this backtest to stop now (called after the cancel commits)."""

    runtime.r().set(CANCEL_KEY.format(backtest_id), "1", ex=3600)


class _CancelWatch(threading.Thread):
    """Polls the run's cancel flag while it runs; on a cancel, kills the chunk's sandbox host so the
    call in flight ends within a poll interval instead of at the end of its chunk."""

    def __init__(self, backtest_id: str, tenant_id: str) -> None:
        super().__init__(name=f"backtest-cancel-{backtest_id[:8]}", daemon=True)
        self.key = CANCEL_KEY.format(backtest_id)
        self.tenant_id = tenant_id
        self.cancelled = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(CANCEL_POLL_SECONDS):
            try:
                if runtime.r().get(self.key):
                    self.cancelled.set()
                    backtest_abort(tenant_id=self.tenant_id)
                    return
            except Exception:  # noqa: BLE001 - Redis away: the chunk-boundary check still cancels
                logger.warning("backtest cancel watch: Redis unavailable", exc_info=True)


def backtest_claim(backtest_id: str) -> Backtest | str | None:
    """Mark the backtest running; None if it cannot run (finished, cancelled, running elsewhere),
    `WAITING` while its tenant already runs its plan's number of backtests (the task retries)."""
    now = timezone.now()
    with transaction.atomic():
        row = Backtest.objects.filter(pk=backtest_id).values("tenant_id").first()
        if row is None:
            return None
        tenant = Tenant.objects.select_for_update().get(pk=row["tenant_id"])
        running = (
            Backtest.objects.filter(
                tenant=tenant, status=BacktestStatus.RUNNING, heartbeat_at__gte=now - STALE_AFTER
            )
            .exclude(pk=backtest_id)
            .count()
        )
        queued = Backtest.objects.filter(
            pk=backtest_id, status=BacktestStatus.QUEUED, cancel_requested_at__isnull=True
        ).exists()
        if queued and running >= plan_get(tenant).backtests_running:
            return WAITING
        return _claim(backtest_id, now)


def _claim(backtest_id: str, now: Any) -> Backtest | None:
    claimed = Backtest.objects.filter(
        Q(status=BacktestStatus.QUEUED)
        | Q(status=BacktestStatus.RUNNING, heartbeat_at__lt=now - STALE_AFTER),
        pk=backtest_id,
        cancel_requested_at__isnull=True,
    ).update(status=BacktestStatus.RUNNING, started_at=now, heartbeat_at=now, bars_done=0)
    if not claimed:
        return None
    BacktestTrade.objects.filter(backtest_id=backtest_id).delete()  # a re-claimed run starts over
    return Backtest.objects.select_related("version__definition").get(pk=backtest_id)


def bars_chunks(bt: Backtest) -> Generator[BarColumns, None, None]:
    """The run's bars, ``chunk_bars`` at a time. Stored bars are read by a prefetch thread, so
    PostgreSQL sends (and we decode) the next chunks while the sandbox host runs this one."""
    chunk = max(1, bt.chunk_bars)
    if bt.dataset_id is not None:
        dataset_id = bt.dataset_id
        yield from _prefetch(lambda: dataset_bars_chunks(dataset_id=dataset_id, chunk=chunk))
        return
    if bt.source == BacktestSource.CSV:  # runs created before datasets kept their own upload
        cols = BarColumns.unpack(bytes(BacktestUpload.objects.get(backtest=bt).bars))
        for lo in range(0, len(cols), chunk):
            yield cols.slice(lo, lo + chunk)
        return
    assert bt.market_id is not None and bt.start is not None and bt.end is not None
    market_id, interval, start, end = bt.market_id, bt.interval_seconds, bt.start, bt.end
    yield from _prefetch(
        lambda: market_bars_chunks(
            market_id=market_id, interval_seconds=interval, start=start, end=end, chunk=chunk
        )
    )


def _prefetch(make: Callable[[], Iterator[BarColumns]], depth: int = 4) -> Iterator[BarColumns]:
    """Run ``make()`` in a thread (with its own DB connection), handing items over a bounded queue."""
    items: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in make():
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            connections.close_all()  # this thread's connection

    thread = threading.Thread(target=work, name="backtest-bars", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=30)


def _bar_columns(cols: BarColumns) -> dict[str, bytes]:
    """A chunk as packed native float64 columns: a memcpy here and in the host, where lists of
    Python floats cost a pickle and an unpickle per value."""
    return {
        name: np.ascontiguousarray(getattr(cols, name), dtype=np.float64).tobytes()
        for name in ("ts", "open", "high", "low", "close", "volume")
    }


MAX_DENIALS_KEPT = 200  # listed in the results; every denial is counted in denial_counts


@dataclass
class _Accumulator:
    done: int = 0
    fills: list[np.ndarray] = field(default_factory=list)
    trades: list[dict[str, Any]] = field(default_factory=list)
    position: dict[str, Any] = field(default_factory=dict)
    host_equity: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    denials: list[dict[str, Any]] = field(default_factory=list)
    denial_counts: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # the market's rules (hours, settlement)

    def add(self, chunk: dict[str, Any], bars: int) -> None:
        self.done += bars
        self.fills.append(chunk["fills"])
        self.trades.extend(chunk["trades"])
        self.position = chunk["position"]
        self.host_equity = chunk["equity"]
        for denial in chunk.get("denials", ()):
            self.denial_counts[denial["code"]] = self.denial_counts.get(denial["code"], 0) + 1
            if len(self.denials) < MAX_DENIALS_KEPT:
                self.denials.append(denial)
        for key, value in chunk.get("host_timings", {}).items():
            self.time("host_" + key, value)

    def time(self, key: str, seconds: float) -> None:
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def all_fills(self) -> np.ndarray:
        return np.concatenate(self.fills) if self.fills else np.zeros((0, 4))


def _progress(bt: Backtest, done: int, started: float) -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    rate = done / elapsed
    bt.bars_done = done
    bt.bars_per_s = round(rate, 1)
    bt.eta_s = round((bt.bars_total - done) / rate, 2) if rate > 0 else None
    bt.heartbeat_at = timezone.now()
    Backtest.objects.filter(pk=bt.pk, status=BacktestStatus.RUNNING).update(
        bars_done=bt.bars_done, bars_per_s=bt.bars_per_s, eta_s=bt.eta_s, heartbeat_at=bt.heartbeat_at
    )
    progress_publish(bt)


def _cancel_requested(bt: Backtest) -> bool:
    return Backtest.objects.filter(pk=bt.pk, cancel_requested_at__isnull=False).exists()


def _finish(bt: Backtest, status: str, **fields: Any) -> None:
    bt.status = status
    bt.finished_at = timezone.now()
    bt.eta_s = 0.0 if status == BacktestStatus.SUCCEEDED else None
    for k, v in fields.items():
        setattr(bt, k, v)
    Backtest.objects.filter(pk=bt.pk, status=BacktestStatus.RUNNING).update(
        status=status, finished_at=bt.finished_at, eta_s=bt.eta_s, bars_done=bt.bars_done, **fields
    )
    transaction.on_commit(lambda: progress_publish(bt))


def _money(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(Decimal("0.01"))


def _nullable(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def backtest_run(backtest_id: str) -> str:
    """Run a backtest to its end; returns its final status (or "skipped" if not claimable)."""
    bt = backtest_claim(backtest_id)
    if bt is None:
        return "skipped"
    if isinstance(bt, str):
        return bt  # WAITING: the task queues itself again
    progress_publish(bt)
    tenant_id = str(bt.tenant_id)
    key = f"backtest-{bt.pk}"
    chunks: Generator[BarColumns, None, None] | None = None
    watch = _CancelWatch(str(bt.pk), tenant_id)
    watch.start()
    try:
        acc = _Accumulator()
        started = time.monotonic()
        backtest_load(bt, tenant_id=tenant_id, key=key)
        params = bt.broker_params
        rules = market_rules_for(bt)
        acc.notes = rules.notes()
        parts: list[BarColumns] = []
        chunks = bars_chunks(bt)
        acc.time("load_s", time.monotonic() - started)
        t = time.monotonic()
        following = next(chunks, None)
        acc.time("bars_wait_s", time.monotonic() - t)
        while following is not None:
            t = time.monotonic()
            # One chunk ahead: the market's rules need to know which chunk is the last.
            part, following = following, next(chunks, None)
            acc.time("bars_wait_s", time.monotonic() - t)
            part, last = rules.cut(part, following)
            t = time.monotonic()
            if watch.cancelled.is_set() or _cancel_requested(bt):
                _finish(bt, BacktestStatus.CANCELLED)
                return bt.status
            parts.append(part)
            bars = _bar_columns(part)
            acc.time("bookkeeping_s", time.monotonic() - t)
            t = time.monotonic()
            result = backtest_chunk(
                tenant_id=tenant_id,
                key=key,
                bars=bars,
                broker_params=rules.chunk_params(params, part, last),
                market=bt.market_code,
                settling=last and rules.settle_value is not None,
            )
            acc.time("chunk_calls_s", time.monotonic() - t)
            t = time.monotonic()
            acc.add(result, len(part))
            _progress(bt, acc.done, started)
            acc.time("bookkeeping_s", time.monotonic() - t)
            if last:
                break
        acc.time("run_s", time.monotonic() - started)
        t = time.monotonic()
        cols = BarColumns.concat(parts)
        if len(cols) != bt.bars_total:  # bars added or removed since creation: report what ran
            bt.bars_total = len(cols)
            Backtest.objects.filter(pk=bt.pk).update(bars_total=bt.bars_total)
        _store_results(bt, cols, acc, t)
        return bt.status
    except SandboxError as exc:
        if watch.cancelled.is_set():  # the host was killed to honour a cancel, not by the strategy
            _finish(bt, BacktestStatus.CANCELLED)
            return bt.status
        logger.info("backtest %s failed: %s", bt.pk, exc)
        _finish(
            bt,
            BacktestStatus.FAILED,
            error_code=str(exc.code),
            error_message=exc.message[:4000],
            error_line=exc.line,
        )
        return bt.status
    except Exception as exc:
        # A platform fault (not the strategy's): recorded, shown, and re-raised for the logs.
        _finish(bt, BacktestStatus.FAILED, error_code="INTERNAL_ERROR", error_message=str(exc)[:4000])
        raise
    finally:
        watch.done.set()
        if chunks is not None:
            chunks.close()  # stops the prefetch thread
        backtest_unload(tenant_id=tenant_id, key=key)


_TRADE_COLUMNS = (
    "backtest_id",
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
)


def _trade_rows(bt: Backtest, acc: _Accumulator) -> list[tuple[Any, ...]]:
    """Closed trades with P&L net of both fees on their quantity, then the still-open position.

    Rows are tuples in ``_TRADE_COLUMNS`` order (a million-bar run can have tens of thousands).
    """
    fee_rate = float(bt.broker_params.get("fee_bps", 0.0)) / 1e4
    rows: list[tuple[Any, ...]] = []
    for t in acc.trades:
        direction = 1.0 if t["side"] == "long" else -1.0
        exit_fee_price = 0.0 if t["reason"] == SETTLEMENT else t["exit_price"]  # settlement: fee-free
        fees = (t["entry_price"] + exit_fee_price) * t["qty"] * fee_rate
        pnl = (t["exit_price"] - t["entry_price"]) * t["qty"] * direction - fees
        rows.append(
            (bt.pk, len(rows) + 1, t["side"], t["qty"], t["entry_ts"], t["entry_price"], t["exit_ts"],
             t["exit_price"], fees, pnl, t["reason"], "")
        )  # fmt: skip
    pos = acc.position
    if pos.get("qty") and pos.get("entry_ts") is not None:
        qty = float(pos["qty"])
        rows.append(
            (bt.pk, len(rows) + 1, "long" if qty > 0 else "short", abs(qty), pos["entry_ts"], pos["avg_price"],
             None, None, abs(qty) * pos["avg_price"] * fee_rate, None, "open at the end of the data", "")
        )  # fmt: skip
    return rows


def _trades_insert(rows: list[tuple[Any, ...]]) -> None:
    """COPY the trade rows in (bulk_create builds a model per row: seconds for a long run)."""
    if not rows:
        return
    table = BacktestTrade._meta.db_table
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f'COPY "{table}" ({", ".join(_TRADE_COLUMNS)}) FROM STDIN') as copy,
    ):
        for row in rows:
            copy.write_row(row)


@transaction.atomic
def _store_results(bt: Backtest, cols: BarColumns, acc: _Accumulator, started: float) -> None:
    capital = float(bt.starting_capital)
    fills = acc.all_fills()
    try:
        equity, qty = metrics.ledger_from_fills(
            ts=cols.ts, close=cols.close, starting_capital=capital, fills=fills
        )
    except ValueError as exc:
        raise SandboxError(ErrorCode.HOST_CRASHED, f"malformed backtest result: {exc}") from exc
    if acc.host_equity is not None and not math.isclose(
        float(equity[-1]), acc.host_equity, rel_tol=1e-9, abs_tol=1e-6
    ):
        raise SandboxError(ErrorCode.HOST_CRASHED, "the host's final equity disagrees with its fills")
    rows = _trade_rows(bt, acc)
    closed = [r for r in rows if r[6] is not None]
    m = metrics.compute(
        starting_capital=capital,
        equity=equity,
        trade_pnls=[r[9] for r in closed],
        bars_in_market=int(np.count_nonzero(qty)),
        interval_seconds=_interval_of(bt, cols),
    )
    m["open_trades"] = len(rows) - len(closed)
    # Orders the same gate as paper trading denied (capital, margin, shorting), with their codes.
    m["denials"] = acc.denials
    m["denial_counts"] = acc.denial_counts
    m["fills"] = len(fills)
    m.update(acc.notes)
    acc.time("metrics_s", time.monotonic() - started)
    t = time.monotonic()
    _trades_insert(rows)
    curve = metrics.downsample(cols.ts, equity, MAX_CURVE_POINTS)
    acc.time("store_s", time.monotonic() - t)
    # Where the time went (shown by the benchmark); host_* figures are the host's own report.
    m["timings"] = {k: round(v, 4) for k, v in acc.timings.items()}
    _finish(
        bt,
        BacktestStatus.SUCCEEDED,
        final_equity=_money(m["final_equity"]),
        pnl=_money(m["pnl"]),
        total_return=_nullable(m["total_return"]),
        win_rate=m["win_rate"],
        max_drawdown=m["max_drawdown"],
        sharpe=m["sharpe"],
        sortino=m["sortino"],
        exposure=m["exposure"],
        num_trades=m["num_trades"],
        equity_curve=curve,
        metrics=m,
    )


def _interval_of(bt: Backtest, cols: BarColumns) -> float:
    """The bar interval for annualisation: the stored interval, or the CSV's median spacing."""
    if bt.source == BacktestSource.CSV and len(cols) > 1:
        spacing = float(np.median(np.diff(cols.ts)))
        return spacing if spacing > 0 else float(bt.interval_seconds)
    return float(bt.interval_seconds)
