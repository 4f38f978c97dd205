"""Quote-triggered ticks: quote published -> tick done, for N instances ticking on every quote.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python bench/engine/bench_quote_ticks.py [--n 100]

Creates N observe instances (`trigger = quote`) of a small strategy on one simulated market over a
few tenants in a throwaway database `<name>_bench_quotes`, starts a real `celery worker` (prefork,
`--concurrency`) and the dispatcher process (`manage.py run_dispatcher`), publishes a quote every
`--every` seconds (each marks all N instances due in the quote's own Redis round trip), warms up
and measures for `--duration` seconds. A quote tick's due time is the instant its quote was stored,
so the engine's own metrics (`ENGINE_METRICS=1`: due -> tick persisted) are the figure asked for.
Prints p50/p99, ticks per quote (N when every quote reaches every instance) and the load average:
the machine is shared, so read the figures with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_engine import Proc, bench_database, celery_worker, cleanup_redis, pct, random_walk  # noqa: E402

STRATEGY = """
from sandbox.sdk import Strategy


class QuoteBench(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {"n": 0, "ema": 0.0}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.state["ema"] = self.state["ema"] * 0.9 + tick.price * 0.1
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between quotes")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=4)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        print("set DATABASE_URL and REDIS_URL", file=sys.stderr)
        return 2
    with bench_database("quotes") as queue:
        result = run(args, queue)
    print()
    print(
        f"Quote-triggered ticks — {os.cpu_count()} CPUs, worker prefork x{args.concurrency}, N = {args.n}, "
        f"a quote every {args.every} s, {args.duration:.0f} s window after {args.warmup:.0f} s warm-up"
    )
    print(
        f"quotes {result['quotes']}  ticks {result['ticks']}  ticks/quote {result['per_quote']:.1f}  "
        f"quote→tick done p50 {result['p50']:.1f} ms  p99 {result['p99']:.1f} ms  "
        f"start p50 {result['start_p50']:.1f} ms  load average {result['load']}"
    )
    print(
        f"batches (p50): {result['batch_size']:.0f} ticks, started {result['batch_late']:.1f} ms after the quote, "
        f"took {result['batch_ms']:.1f} ms"
    )
    return 0


def run(args: argparse.Namespace, queue: str) -> dict:
    from django.contrib.auth import get_user_model

    from sandbox import validate_source
    from stratbox.engine import runtime
    from stratbox.engine.reconciler import reconcile
    from stratbox.instances.models import StrategyInstance
    from stratbox.markets.models import Market
    from stratbox.trading.models import Account
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.services import tenant_create

    cleanup_redis()
    market, _ = Market.objects.get_or_create(venue="SIM", symbol="QBENCH", defaults={"sim_start_price": 100})
    report = validate_source(STRATEGY)
    instances = []
    User = get_user_model()
    for t in range(args.tenants):
        user = User.objects.create_user(
            username=f"q{t}@bench.local", email=f"q{t}@bench.local", password=uuid.uuid4().hex
        )
        tenant = tenant_create(name=f"qbench-{t}", owner=user)
        account = Account.objects.create(tenant=tenant, name="Paper", kind="paper")
        definition = StrategyDefinition.objects.create(tenant=tenant, key="qbench", name="qbench")
        version = StrategyVersion.objects.create(
            definition=definition,
            number=1,
            source=STRATEGY,
            sha256=uuid.uuid4().hex,
            config_schema=report.config_schema,
        )
        per = args.n // args.tenants + (1 if t < args.n % args.tenants else 0)
        instances += [
            StrategyInstance(
                tenant=tenant,
                name=f"qbench-{i}",
                strategy=definition,
                version=version,
                account=account,
                market=market,
                trigger="quote",
                mode="observe",
                total_capital=Decimal("1000"),
            )
            for i in range(per)
        ]
    StrategyInstance.objects.bulk_create(instances)
    reconcile()

    quotes = {"n": 0}
    stop = threading.Event()

    env = {**os.environ, "ENGINE_METRICS": "1", "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    worker = celery_worker("quotes-worker", queue, "qbench", args.concurrency, env)
    dispatcher = Proc("quotes-dispatcher", [py, "manage.py", "run_dispatcher"], env)
    r = runtime.r()
    try:
        random_walk(market, stop, seed=1, every=args.every, counter=quotes)
        time.sleep(args.warmup)
        r.delete(runtime.METRICS_TICK_KEY, runtime.METRICS_BATCH_KEY)
        q0 = quotes["n"]
        time.sleep(args.duration)
        ticks = [tuple(map(float, x.split(","))) for x in r.lrange(runtime.METRICS_TICK_KEY, 0, -1)]
        n_quotes = quotes["n"] - q0
        batches = [x.split(",") for x in r.lrange(runtime.METRICS_BATCH_KEY, 0, -1)]
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    finally:
        stop.set()
        dispatcher.stop()
        worker.stop()
    StrategyInstance.objects.filter(pk__in=[i.pk for i in instances]).update(mode="off")
    latency = [(t[2] - t[0]) * 1000 for t in ticks]
    start = [(t[1] - t[0]) * 1000 for t in ticks]
    return {
        "quotes": n_quotes,
        "ticks": len(ticks),
        "per_quote": len(ticks) / max(n_quotes, 1),
        "p50": pct(latency, 50),
        "p99": pct(latency, 99),
        "start_p50": pct(start, 50),
        "load": load,
        "batch_size": pct([float(b[0]) for b in batches], 50),
        "batch_late": pct([float(b[9]) * 1000 for b in batches], 50),
        "batch_ms": pct([float(b[4]) * 1000 for b in batches], 50),
    }


if __name__ == "__main__":
    raise SystemExit(main())
