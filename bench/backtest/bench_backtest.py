"""Benchmark: SMA(10/20) crossover over 1,000,000 bars, end to end through the platform vs plain Python.

End to end = ``backtest_create`` (commit, enqueue) -> a real Celery worker claims the task -> the
bars are read from PostgreSQL -> streamed in chunks to the tenant's sandbox host, which runs the
whole bar loop with the paper fill model -> per-bar equity is rebuilt from the fills, metrics are
computed over every bar, trades and the curve are stored -> status ``succeeded``. The clock stops
when the row says so. The plain loop is the same strategy and fill model as an in-process function.

Run with ``make bench-backtest`` (uses TEST_DATABASE_URL / TEST_REDIS_URL); ``--bars N`` to change
the size. The bench creates its own tenant, market (``BENCH:SMA``) and bars, and reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

FAST, SLOW, QTY = 10, 20, 1.0
START = datetime(2020, 1, 1, tzinfo=UTC)
INTERVAL = 60

SMA_SOURCE = """
from sandbox.sdk import Strategy


class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "fast": {"type": "int", "default": 10, "min": 1, "max": 500},
        "slow": {"type": "int", "default": 20, "min": 2, "max": 1000},
        "qty": {"type": "float", "default": 1.0, "min": 0.0001, "max": 1000000},
    }

    def init(self):
        self.ring = []
        self.fsum = 0.0
        self.ssum = 0.0
        self.long = False
        self.fast = self.config["fast"]
        self.slow = self.config["slow"]
        self.qty = self.config["qty"]
        return {}

    def on_tick(self, tick):
        self.ring.append(tick.close)
        self.fsum += tick.close
        self.ssum += tick.close
        n = len(self.ring)
        if n > self.fast:
            self.fsum -= self.ring[n - 1 - self.fast]
        if n > self.slow:
            self.ssum -= self.ring.pop(0)
            n -= 1
        if n < self.slow:
            return
        diff = self.fsum / self.fast - self.ssum / self.slow
        if diff > 0 and not self.long:
            self.context.place_order("buy", self.qty)
            self.long = True
        elif diff < 0 and self.long:
            self.context.place_order("sell", self.qty)
            self.long = False
"""


def plain_sma(closes: list[float], slippage_bps: float, fee_bps: float, capital: float) -> tuple[int, float]:
    """The same strategy and fill model as a plain in-process loop: (fills, final equity)."""
    ring: list[float] = []
    fsum = ssum = 0.0
    long = False
    cash, qty, fills = capital, 0.0, 0
    slip, fee = slippage_bps / 1e4, fee_bps / 1e4
    for c in closes:
        ring.append(c)
        fsum += c
        ssum += c
        n = len(ring)
        if n > FAST:
            fsum -= ring[n - 1 - FAST]
        if n > SLOW:
            ssum -= ring.pop(0)
            n -= 1
        if n < SLOW:
            continue
        diff = fsum / FAST - ssum / SLOW
        if diff > 0 and not long:
            price = c * (1 + slip)
            cash -= QTY * price + QTY * price * fee
            qty, long, fills = QTY, True, fills + 1
        elif diff < 0 and long:
            price = c * (1 - slip)
            cash += QTY * price - QTY * price * fee
            qty, long, fills = 0.0, False, fills + 1
    return fills, cash + qty * closes[-1]


def random_walk(n: int, seed: int = 42) -> list[float]:
    rng = random.Random(seed)
    price, out = 100.0, []
    for _ in range(n):
        price *= math.exp(rng.gauss(0.0, 0.001))
        out.append(round(price, 6))
    return out


def ensure_bars(market, closes: list[float]) -> None:  # type: ignore[no-untyped-def]
    """Store the bars once (binary-free COPY: a million rows in seconds, not minutes)."""
    from django.db import connection, transaction

    from stratbox.markets.models import Bar

    have = Bar.objects.filter(market=market, interval_seconds=INTERVAL).count()
    if have == len(closes):
        return
    Bar.objects.filter(market=market).delete()
    table = Bar._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        sql = f'COPY "{table}" (market_id, ts, interval_seconds, open, high, low, close, volume) FROM STDIN'
        with cursor.cursor.copy(sql) as copy:
            prev = closes[0]
            for i, c in enumerate(closes):
                ts = START + timedelta(seconds=INTERVAL * i)
                copy.write_row((market.pk, ts, INTERVAL, prev, max(prev, c), min(prev, c), c, 1))
                prev = c
        cursor.execute(
            f'ANALYZE "{table}"'
        )  # fresh statistics: the planner then walks the (market, ts) index


def start_worker(queue: str) -> subprocess.Popen[bytes]:
    from django.conf import settings

    log = (ROOT / "var" / "bench-backtest-worker.log").open("wb")
    env = {**os.environ, "CELERY_QUEUE": queue, "REDIS_URL": settings.REDIS_URL}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "stratbox",
            "worker",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from stratbox.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(destination=[f"{queue}@{os.uname().nodename}"], timeout=0.5):
            return proc
        if proc.poll() is not None:
            break
    raise SystemExit("the benchmark worker did not start; see var/bench-backtest-worker.log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=50_000)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from stratbox.backtests.fillmodel import broker_params_for
    from stratbox.backtests.models import Backtest
    from stratbox.backtests.services import BarsSpec, backtest_create
    from stratbox.celery import app
    from stratbox.markets.models import Market
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.models import Tenant
    from tenants.services import tenant_create

    closes = random_walk(args.bars)
    market, _ = Market.objects.get_or_create(venue="BENCH", symbol="SMA")
    t = time.perf_counter()
    ensure_bars(market, closes)
    print(f"bars stored: {args.bars:,} ({time.perf_counter() - t:.1f}s, reused when present)")

    user = get_user_model().objects.filter(username="bench@stratbox.local").first()
    if user is None:
        user = get_user_model().objects.create_user(
            username="bench@stratbox.local", email="bench@stratbox.local"
        )
    tenant = Tenant.objects.filter(memberships__user=user).first() or tenant_create(name="Bench", owner=user)
    sha = hashlib.sha256(SMA_SOURCE.encode()).hexdigest()
    definition, _ = StrategyDefinition.objects.get_or_create(
        tenant=tenant, key="bench-sma", defaults={"name": "bench sma", "style": "tick"}
    )
    version, _ = StrategyVersion.objects.get_or_create(
        definition=definition, sha256=sha, defaults={"number": 1, "source": SMA_SOURCE, "config_schema": {}}
    )

    queue = f"bench-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    worker = start_worker(queue)
    try:
        end = START + timedelta(seconds=INTERVAL * args.bars)
        spec = BarsSpec(market=market, start=START, end=end, interval_seconds=INTERVAL)
        # warm-up: a small run spawns the tenant's sandbox host (start-up is not per-backtest cost)
        warm = backtest_create(
            tenant=tenant,
            actor=None,
            version=version,
            bars=BarsSpec(
                market=market,
                start=START,
                end=START + timedelta(seconds=INTERVAL * 1000),
                interval_seconds=INTERVAL,
            ),
        )
        _wait(Backtest, warm.pk)
        t0 = time.perf_counter()
        bt = backtest_create(tenant=tenant, actor=None, version=version, bars=spec, chunk_bars=args.chunk)
        bt = _wait(Backtest, bt.pk)
        e2e = time.perf_counter() - t0
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    if bt.status != "succeeded":
        raise SystemExit(f"backtest {bt.status}: {bt.error_code} {bt.error_message}")

    params = broker_params_for(capital=bt.starting_capital)
    t1 = time.perf_counter()
    fills, final = plain_sma(closes, params["slippage_bps"], params["fee_bps"], float(bt.starting_capital))
    plain = time.perf_counter() - t1
    same = (
        math.isclose(final, float(bt.metrics["final_equity"]), rel_tol=1e-9) and fills == bt.metrics["fills"]
    )

    e2e_rate, plain_rate = args.bars / e2e, args.bars / plain
    print(f"SMA({FAST}/{SLOW}) crossover over {args.bars:,} bars, chunks of {args.chunk:,}")
    print(f"  end to end (task, sandbox host, chunks, stored): {e2e:7.2f} s  {e2e_rate:>11,.0f} bars/s")
    print(f"  plain in-process Python loop:                    {plain:7.2f} s  {plain_rate:>11,.0f} bars/s")
    print(f"  ratio end-to-end / plain: {e2e / plain:.2f}x   (target: >= 300,000 bars/s and <= 2x)")
    tm = bt.metrics.get("timings", {})
    run_s, wait_s = tm.get("run_s", 0.0), tm.get("bars_wait_s", 0.0)
    print(
        f"  where the time went: chunk loop {run_s:.2f} s (sandbox host + IPC, bars read from PostgreSQL "
        f"alongside; {wait_s:.2f} s spent waiting for bars), queue + metrics + storing {e2e - run_s:.2f} s"
    )
    print(
        f"  trades {bt.num_trades:,}, fills {bt.metrics['fills']:,}, final equity {bt.final_equity}, "
        f"same result as the plain loop: {same}"
    )


def _wait(model, pk, timeout: float = 600.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bt = model.objects.get(pk=pk)
        if bt.status in ("succeeded", "failed", "cancelled"):
            return bt
        time.sleep(0.02)
    raise SystemExit("the backtest did not finish in time")


if __name__ == "__main__":
    main()
