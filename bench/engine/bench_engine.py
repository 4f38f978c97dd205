"""Engine benchmark: N instances ticking every second on real Celery, Redis and PostgreSQL.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python bench/engine/bench_engine.py [--sizes 100,1000]

For each N it creates N active paper instances of a small strategy (one order every 10 ticks) over a
few tenants, reconciles them, starts a real `celery worker` (prefork, `--concurrency` processes) and
a real `celery beat` and the engine's dispatcher process (`manage.py run_dispatcher`), feeds a quote every
half second, lets it warm up, then measures for `--duration` seconds and prints:

- ticks/s sustained (ticks completed in the window / window), coalesced (skipped) slots;
- due-to-done latency p50/p99 (slot time -> tick persisted) and start lateness p50/p99;
- order placement latency p50/p99 (`trading.services.order_place`, risk gate + paper broker);
- worker CPU (% of one core, worker processes + sandbox hosts) and memory (RSS).

It works in a throwaway database `<name>_bench_engine` next to DATABASE_URL's (created and dropped)
and removes its Redis keys afterwards; the timings come from the engine's ENGINE_METRICS lists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

STRATEGY = """
from sandbox.sdk import Strategy


class Bench(Strategy):
    CONFIG_SCHEMA = {
        "every": {"type": "int", "default": 10, "min": 1, "max": 1000},
        "offset": {"type": "int", "default": 0, "min": 0, "max": 1000},
    }

    def init(self):
        return {"n": 0, "ema": 0.0, "side": "buy"}

    def on_tick(self, tick):
        st = self.state
        st["n"] += 1
        st["ema"] = st["ema"] * 0.9 + tick.price * 0.1
        if (st["n"] + self.config["offset"]) % self.config["every"] == 0:
            self.context.place_order(st["side"], 0.001)
            st["side"] = "sell" if st["side"] == "buy" else "buy"
"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@contextlib.contextmanager
def bench_database(name: str, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """A throwaway database `<DATABASE_URL's>_bench_<name>`, migrated, with Django set up on it and
    a private Celery queue `bench-<name>-...` (yielded); `extra_env` is set before Django starts.
    The database and the bench's Redis keys are dropped at the end."""
    parsed = urlparse(os.environ["DATABASE_URL"])
    db_name = f"{parsed.path.lstrip('/')}_bench_{name}"
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    recreate_database(admin_url, db_name)
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    os.environ.update(
        {
            "DATABASE_URL": urlunparse(parsed._replace(path="/" + db_name)),
            "CELERY_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "stratbox.settings",
            "LOG_LEVEL": "WARNING",
            **(extra_env or {}),
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        yield queue
    finally:
        cleanup_redis()
        from django.db import connections

        connections.close_all()
        recreate_database(admin_url, db_name, drop_only=True)


def random_walk(market: Any, stop: threading.Event, *, seed: int, price: float = 100.0, every: float = 0.5,
                counter: dict[str, int] | None = None) -> threading.Thread:  # fmt: skip
    """A started thread storing a random-walk quote for `market` every `every` seconds until `stop`."""
    from stratbox.markets.quotes import quote_set

    def feed() -> None:
        p, rnd = price, random.Random(seed)
        while not stop.is_set():
            p *= math.exp(rnd.gauss(0, 0.0005))
            quote = {"price": round(p, 2), "bid": round(p - 0.01, 2), "ask": round(p + 0.01, 2)}
            quote_set(market.id, {"market": market.code, **quote, "volume": 1.0, "ts": time.time()})
            if counter is not None:
                counter["n"] += 1
            stop.wait(every)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def recreate_database(admin_url: str, name: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.log = open(f"/tmp/bench-engine-{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args, cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def celery_worker(
    name: str,
    queue: str,
    node: str,
    concurrency: int,
    env: dict[str, str],
    *extra: str,
    loglevel: str = "WARNING",
) -> Proc:
    """A `celery worker` process consuming `queue` (node name `node@%h`), logging to /tmp."""
    args = [sys.executable, "-m", "celery", "-A", "stratbox", "worker", "-Q", queue, "-n", f"{node}@%h"]
    args += ["--concurrency", str(concurrency), "--without-gossip", "--without-mingle", *extra]
    return Proc(name, [*args, "--loglevel", loglevel], env)


def tree_usage(pid: int) -> tuple[float, int, int]:
    """(cpu seconds, RSS bytes of worker processes, RSS bytes of sandbox hosts) of a process tree."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0, 0
    cpu = 0.0
    rss_worker = rss_hosts = 0
    for p in procs:
        try:
            t = p.cpu_times()
            cpu += t.user + t.system
            rss = p.memory_info().rss
            if "celery" in " ".join(p.cmdline()):
                rss_worker += rss
            else:
                rss_hosts += rss
        except psutil.Error:
            continue
    return cpu, rss_worker, rss_hosts


def services_cpu() -> float:
    """CPU seconds used so far by the machine's PostgreSQL and Redis servers (all their processes).

    A backend that exits (a connection closed after CONN_MAX_AGE) leaves the sum of the live
    processes, but the postmaster, which reaps it, adds its CPU to its own children's times: those
    are counted too, so the figure never drops when backends come and go."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] and (
            p.info["name"].startswith("postgres") or p.info["name"].startswith("redis-server")
        ):
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                continue
    return total


def main() -> int:
    if "--noisy" in sys.argv[1:]:  # the noisy-neighbour mode: bench_noisy.py beside this file
        from bench_noisy import main as noisy_main

        return noisy_main(sys.argv[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--order-every", type=int, default=10)
    parser.add_argument(
        "--worker-loglevel", default="WARNING", help="INFO logs every task and its duration (diagnosis)"
    )
    parser.add_argument(
        "--worker-args", default="", help='more `celery worker` options, e.g. "--prefetch-multiplier 4"'
    )
    parser.add_argument(
        "--dump", default="", help="write the raw tick and batch metrics of the window to this JSON file"
    )
    args = parser.parse_args()

    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        print("set DATABASE_URL and REDIS_URL (make bench-engine does)", file=sys.stderr)
        return 2
    results = []
    with bench_database("engine") as queue:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            results.append(run_size(size, args, queue))
    print()
    print("=" * 100)
    print(
        f"Engine benchmark — {os.cpu_count()} CPUs, worker prefork x{args.concurrency}, "
        f"load average now {os.getloadavg()[0]:.2f}, "
        f"{args.duration:.0f} s window after {args.warmup:.0f} s warm-up, active paper instances, "
        f"an order every {args.order_every} ticks"
    )
    header = (
        f"{'N':>6} {'ticks/s':>8} {'coalesced':>9} {'due→done p50':>13} {'p99':>8} {'start late p50':>15} "
        f"{'p99':>8} {'order p50':>10} {'p99':>8} {'orders':>7} {'CPU %':>6} {'RSS worker':>11} {'RSS hosts':>10}"
        f" {'load avg':>9}"
    )
    print(header)
    for r in results:
        print(
            f"{r['n']:>6} {r['tps']:>8.1f} {r['coalesced']:>9} {r['lat_p50']:>10.1f} ms {r['lat_p99']:>5.1f} ms "
            f"{r['late_p50']:>12.1f} ms {r['late_p99']:>5.1f} ms {r['ord_p50']:>7.1f} ms {r['ord_p99']:>5.1f} ms "
            f"{r['orders']:>7} {r['cpu']:>6.0f} {r['rss_worker'] / 2**20:>8.0f} MiB {r['rss_hosts'] / 2**20:>7.0f} MiB"
            f" {r['load']:>9.2f}"
        )
    print("=" * 100)
    return 0


def cleanup_redis() -> None:
    from stratbox.engine import runtime

    r = runtime.r()
    for pattern in ("sbx:eng:*", "sbx:trade:*", "quote:*"):
        keys = list(r.scan_iter(match=pattern, count=5000))
        for start in range(0, len(keys), 5000):
            r.delete(*keys[start : start + 5000])


def run_size(size: int, args: argparse.Namespace, queue: str) -> dict:
    from django.contrib.auth import get_user_model

    from sandbox import validate_source
    from stratbox.engine import runtime
    from stratbox.engine.reconciler import reconcile
    from stratbox.instances.models import StrategyInstance
    from stratbox.markets.models import Market
    from stratbox.markets.quotes import quote_set
    from stratbox.trading.models import Account, Order
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.services import tenant_create

    cleanup_redis()
    StrategyInstance.objects.update(mode="off")
    market, _ = Market.objects.get_or_create(venue="SIM", symbol="BENCH", defaults={"sim_start_price": 100})
    report = validate_source(STRATEGY)
    instances = []
    User = get_user_model()
    for t in range(args.tenants):
        user = User.objects.create_user(
            username=f"b{size}-{t}@bench.local", email=f"b{size}-{t}@bench.local", password=uuid.uuid4().hex
        )
        tenant = tenant_create(name=f"bench-{size}-{t}", owner=user)
        tenant.capital_limit = Decimal("1000000000")
        tenant.save(update_fields=["capital_limit"])
        account = Account.objects.create(
            tenant=tenant,
            name="Paper",
            kind="paper",
            balance=Decimal("10000000"),
            starting_balance=Decimal("10000000"),
        )
        definition = StrategyDefinition.objects.create(tenant=tenant, key="bench", name="bench")
        version = StrategyVersion.objects.create(
            definition=definition,
            number=1,
            source=STRATEGY,
            sha256=uuid.uuid4().hex,
            config_schema=report.config_schema,
        )
        per = size // args.tenants + (1 if t < size % args.tenants else 0)
        instances += [
            StrategyInstance(
                tenant=tenant,
                name=f"bench-{i}",
                strategy=definition,
                version=version,
                account=account,
                market=market,
                # Instances deployed at different times order in different seconds: with one
                # offset for all, every instance would order in the same second every 10 s.
                config={"every": args.order_every, "offset": i % args.order_every},
                frequency_seconds=1,
                mode="active",
                max_positions=1000,
                max_position_size=Decimal("100000"),
                max_daily_loss=Decimal("1000000"),
            )
            for i in range(per)
        ]
    StrategyInstance.objects.bulk_create(instances)
    price = 100.0
    quote_set(
        market.id,
        {
            "market": market.code,
            "price": price,
            "bid": price - 0.01,
            "ask": price + 0.01,
            "volume": 1.0,
            "ts": time.time(),
        },
    )
    t0 = time.perf_counter()
    reconcile()
    print(f"[N={size}] reconciled (loaded with init()) in {time.perf_counter() - t0:.1f} s", flush=True)

    stop = threading.Event()
    random_walk(market, stop, seed=size, price=price)
    env = {**os.environ, "ENGINE_METRICS": "1", "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    worker = celery_worker(
        f"worker-{size}",
        queue,
        f"bench{size}",
        args.concurrency,
        env,
        *args.worker_args.split(),
        loglevel=args.worker_loglevel,
    )
    beat = Proc(
        f"beat-{size}",
        [
            py,
            "-m",
            "celery",
            "-A",
            "stratbox",
            "beat",
            "--loglevel",
            "WARNING",
            "--schedule",
            f"/tmp/bench-engine-beat-{size}",
        ],
        env,
    )
    dispatcher = Proc(f"dispatcher-{size}", [py, "manage.py", "run_dispatcher"], env)
    r = runtime.r()
    try:
        time.sleep(args.warmup)
        r.delete(runtime.METRICS_TICK_KEY, runtime.METRICS_ORDER_KEY, runtime.METRICS_BATCH_KEY)
        coalesced0 = sum(int(v or 0) for v in _coalesced(r, instances))
        orders0 = Order.objects.filter(instance__in=instances).count()
        cpu0, _, _ = tree_usage(worker.proc.pid)
        svc0 = services_cpu()
        w0 = time.perf_counter()
        time.sleep(args.duration)
        window = time.perf_counter() - w0
        cpu1, rss_worker, rss_hosts = tree_usage(worker.proc.pid)
        svc1 = services_cpu()
        ticks = [tuple(map(float, x.split(","))) for x in r.lrange(runtime.METRICS_TICK_KEY, 0, -1)]
        order_ms = [float(x) for x in r.lrange(runtime.METRICS_ORDER_KEY, 0, -1)]
        batches = [x.split(",") for x in r.lrange(runtime.METRICS_BATCH_KEY, 0, -1)]
        if args.dump:
            Path(args.dump).write_text(json.dumps({"n": size, "ticks": ticks, "batches": batches}))
        coalesced = sum(int(v or 0) for v in _coalesced(r, instances)) - coalesced0
        orders = Order.objects.filter(instance__in=instances).count() - orders0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan the worker
        stop.set()
        dispatcher.stop()
        beat.stop()
        worker.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)
    StrategyInstance.objects.filter(pk__in=[i.pk for i in instances]).update(mode="off")
    latency = [(t[2] - t[0]) * 1000 for t in ticks]
    lateness = [(t[1] - t[0]) * 1000 for t in ticks]
    phases = {
        "snapshot": statistics.fmean(t[3] for t in ticks) * 1000 if ticks else float("nan"),
        "strategy": statistics.fmean(t[4] for t in ticks) * 1000 if ticks else float("nan"),
        "orders": statistics.fmean(t[5] for t in ticks) * 1000 if ticks else float("nan"),
    }
    result = {
        "n": size,
        "tps": len(ticks) / window,
        "coalesced": coalesced,
        "lat_p50": pct(latency, 50),
        "lat_p99": pct(latency, 99),
        "late_p50": pct(lateness, 50),
        "late_p99": pct(lateness, 99),
        "ord_p50": pct(order_ms, 50),
        "ord_p99": pct(order_ms, 99),
        "orders": orders,
        "cpu": (cpu1 - cpu0) / window * 100,
        "cpu_services": (svc1 - svc0) / window * 100,
        "cpu_ms_per_tick": (cpu1 - cpu0) * 1000 / max(len(ticks), 1),
        "services_ms_per_tick": (svc1 - svc0) * 1000 / max(len(ticks), 1),
        "rss_worker": rss_worker,
        "rss_hosts": rss_hosts,
        # The machine is shared: the 1-minute load average at the end of the window, next to the figures.
        "load": os.getloadavg()[0],
    }
    print(
        f"[N={size}] {result['tps']:.1f} ticks/s, due→done p50 {result['lat_p50']:.1f} ms "
        f"p99 {result['lat_p99']:.1f} ms, orders {orders} (p50 {result['ord_p50']:.1f} ms), "
        f"mean tick {statistics.fmean(t[2] - t[1] for t in ticks) * 1000 if ticks else float('nan'):.2f} ms "
        f"(trusted snapshot {phases['snapshot']:.2f} ms, sandbox call {phases['strategy']:.2f} ms, "
        f"order_place {phases['orders']:.2f} ms per tick); CPU per tick: worker+hosts "
        f"{result['cpu_ms_per_tick']:.2f} ms, PostgreSQL+Redis {result['services_ms_per_tick']:.2f} ms; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    result["phases"] = phases
    if batches:
        busy = sum(float(b[4]) for b in batches)
        statuses = sorted({s for b in batches for s in b[5].split("/")})
        print(
            f"[N={size}] {len(batches)} batches, {statistics.fmean(int(b[0]) for b in batches):.1f} ticks each "
            f"({statistics.fmean(int(b[1]) for b in batches):.1f} ok); per batch: prefetch "
            f"{statistics.fmean(float(b[2]) for b in batches) * 1000:.1f} ms, begin "
            f"{statistics.fmean(float(b[3]) for b in batches) * 1000:.1f} ms, whole batch "
            f"{busy / len(batches) * 1000:.1f} ms; workers busy {busy / window / args.concurrency * 100:.0f}% "
            f"of the window; outcomes seen: {', '.join(statuses)}",
            flush=True,
        )
        # Per worker process: the gaps between one batch's end and the next one's start (Celery's
        # hand-off, or nothing to do), and how late batches started after their last member was due.
        by_pid: dict[str, list[tuple[float, float]]] = {}
        for b in batches:
            by_pid.setdefault(b[6], []).append((float(b[7]), float(b[8])))
        gaps = [
            (nxt[0] - cur[1]) * 1000
            for spans in by_pid.values()
            for cur, nxt in zip(sorted(spans), sorted(spans)[1:], strict=False)
        ]
        late = [float(b[9]) * 1000 for b in batches]
        print(
            f"[N={size}] between batches of a worker process: p50 {pct(gaps, 50):.1f} ms, mean "
            f"{statistics.fmean(gaps) if gaps else float('nan'):.1f} ms; batch start after its last due "
            f"time: p50 {pct(late, 50):.1f} ms, p99 {pct(late, 99):.1f} ms",
            flush=True,
        )
    return result


def _coalesced(r, instances) -> list:  # type: ignore[no-untyped-def]
    from stratbox.engine import runtime

    pipe = r.pipeline(transaction=False)
    for inst in instances:
        pipe.hget(runtime.rt_key(str(inst.pk)), "coalesced_ticks")
    return pipe.execute()


if __name__ == "__main__":
    raise SystemExit(main())
