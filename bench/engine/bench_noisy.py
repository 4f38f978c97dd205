"""Noisy-neighbour mode of the engine benchmark (`make bench-engine BENCH_ENGINE_ARGS=--noisy`).

A quiet tenant runs `--quiet` active paper instances every second. The tick latency of its ticks
(due -> done, and start lateness) is measured twice, each time for `--duration` seconds after a
warm-up, on the same real processes — a tick worker pool on the default queue, a long-work pool on
`<queue>.long`, the dispatcher:

1. alone;
2. while a heavy neighbour keeps `--heavy` CPU-bound backtests running (its plan lets all of them
   run at once, on a long-work pool of as many processes) and `--floods` threads send requests as
   fast as they return to the real web server (uvicorn): half anonymous health checks, half
   version diffs with the neighbour's token.

It prints both p50/p99 figures and the ratio of the p99s (target: at most 1.5). On a shared or
loaded machine the figures are noisy; the load average is printed next to them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from decimal import Decimal

from bench_engine import STRATEGY, Proc, bench_database_url, cleanup_redis, pct, recreate_database, tree_usage

HEAVY = """
from sandbox.sdk import Strategy


class Heavy(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        x = 0
        for i in range(300000):
            x += i
        self.state["n"] += 1
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--noisy", action="store_true")
    parser.add_argument("--quiet", type=int, default=20, help="instances of the quiet tenant")
    parser.add_argument("--heavy", type=int, default=2, help="CPU-heavy backtests of the neighbour at once")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=2, help="tick worker processes")
    parser.add_argument("--floods", type=int, default=4, help="threads flooding the health check (0: none)")
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        print("set DATABASE_URL and REDIS_URL (make bench-engine does)", file=sys.stderr)
        return 2
    db_url, admin_url, db_name = bench_database_url(os.environ["DATABASE_URL"])
    queue = f"bench-noisy-{uuid.uuid4().hex[:8]}"
    recreate_database(admin_url, db_name)
    plans = {
        "standard": {"max_instances": 100000, "min_frequency_seconds": 1, "backtests_running": 100, "backtests_queued": 1000}
    }  # fmt: skip
    os.environ.update(
        {
            "DATABASE_URL": db_url,
            "CELERY_QUEUE": queue,
            "DJANGO_SETTINGS_MODULE": "stratbox.settings",
            "LOG_LEVEL": "WARNING",
            "STRATBOX_PLANS": json.dumps(plans),
            "STRATBOX_HTTPS": "0",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        quiet_alone, with_neighbour = run(args, queue)
    finally:
        cleanup_redis()
        from django.db import connections

        connections.close_all()
        recreate_database(admin_url, db_name, drop_only=True)
    print()
    print("=" * 100)
    print(
        f"Noisy neighbour — {os.cpu_count()} CPUs, {args.quiet} quiet 1-s instances, tick pool x{args.concurrency}, "
        f"neighbour: {args.heavy} CPU-heavy backtests on the long pool x{args.heavy} + {args.floods} threads "
        "flooding health checks and diffs over HTTP; "
        f"{args.duration:.0f} s windows"
    )
    print(
        f"{'phase':<22} {'ticks/s':>8} {'coalesced':>9} {'due→done p50':>13} {'p99':>9} {'late p50':>9} {'p99':>9} {'load':>6}"
    )
    for name, r in (("quiet tenant alone", quiet_alone), ("with heavy neighbour", with_neighbour)):
        print(
            f"{name:<22} {r['tps']:>8.1f} {r['coalesced']:>9} {r['lat_p50']:>10.1f} ms {r['lat_p99']:>6.1f} ms "
            f"{r['late_p50']:>6.1f} ms {r['late_p99']:>6.1f} ms {r['load']:>6.2f} {r['long_pool_cpu_pct']:>12.0f} %"
        )
    ratio = with_neighbour["lat_p99"] / quiet_alone["lat_p99"] if quiet_alone["lat_p99"] else float("nan")
    p50_ratio = with_neighbour["lat_p50"] / quiet_alone["lat_p50"] if quiet_alone["lat_p50"] else float("nan")
    print(f"due→done ratio (with / without neighbour): p99 {ratio:.2f} (target <= 1.5), p50 {p50_ratio:.2f}")
    print("=" * 100)
    return 0


def run(args: argparse.Namespace, queue: str) -> tuple[dict, dict]:
    import numpy as np
    from django.contrib.auth import get_user_model

    from sandbox import validate_source
    from stratbox.backtests.csvbars import BarColumns
    from stratbox.backtests.models import Backtest
    from stratbox.backtests.services import BarsSpec, backtest_create
    from stratbox.engine import runtime
    from stratbox.engine.reconciler import reconcile
    from stratbox.instances.models import StrategyInstance
    from stratbox.markets.models import Market
    from stratbox.markets.quotes import quote_set
    from stratbox.trading.models import Account
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.services import tenant_create, token_create

    cleanup_redis()
    User = get_user_model()
    market, _ = Market.objects.get_or_create(venue="SIM", symbol="NOISY", defaults={"sim_start_price": 100})

    def tenant(name: str, source: str) -> tuple:
        user = User.objects.create_user(
            username=f"{name}@bench.local", email=f"{name}@bench.local", password="x" * 20
        )
        t = tenant_create(name=name, owner=user)
        t.capital_limit = Decimal("1000000000")
        t.save(update_fields=["capital_limit"])
        account = Account.objects.create(
            tenant=t,
            name="Paper",
            kind="paper",
            balance=Decimal("10000000"),
            starting_balance=Decimal("10000000"),
        )
        definition = StrategyDefinition.objects.create(tenant=t, key="b", name="b")
        version = StrategyVersion.objects.create(
            definition=definition, number=1, source=source, sha256=uuid.uuid4().hex,
            config_schema=validate_source(source).config_schema,
        )  # fmt: skip
        return t, user, account, version

    quiet, _, q_account, q_version = tenant("quiet", STRATEGY)
    noisy, n_user, _, n_version = tenant("noisy", HEAVY)
    StrategyVersion.objects.create(
        definition=n_version.definition, number=2, source=HEAVY.replace("x += i", "x = x + i"),
        sha256=uuid.uuid4().hex, config_schema=n_version.config_schema,
    )  # fmt: skip
    diff_path = f"/api/v1/strategies/{n_version.definition_id}/versions/2/diff/"
    n_token = token_create(tenant=noisy, user=n_user, name="flood", scopes=["read"]).plaintext
    instances = StrategyInstance.objects.bulk_create(
        StrategyInstance(
            tenant=quiet,
            name=f"q-{i}",
            strategy=q_version.definition,
            version=q_version,
            account=q_account,
            market=market,
            config={"every": 10, "offset": i % 10},
            frequency_seconds=1,
            mode="active",
            max_positions=1000,
            max_position_size=Decimal("100000"),
            max_daily_loss=Decimal("1000000"),
        )  # fmt: skip
        for i in range(args.quiet)
    )
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            quote_set(
                market.id,
                {
                    "market": market.code,
                    "price": 100.0,
                    "bid": 99.99,
                    "ask": 100.01,
                    "volume": 1.0,
                    "ts": time.time(),
                },
            )
            stop.wait(0.5)

    threading.Thread(target=feed, daemon=True).start()
    reconcile()
    env = {**os.environ, "ENGINE_METRICS": "1", "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    celery = [
        py,
        "-m",
        "celery",
        "-A",
        "stratbox",
        "worker",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    ticks = Proc(
        "noisy-ticks", [*celery, "-Q", queue, "-n", "ticks@%h", "--concurrency", str(args.concurrency)], env
    )
    long = Proc(
        "noisy-long", [*celery, "-Q", f"{queue}.long", "-n", "long@%h", "--concurrency", str(args.heavy)], env
    )
    dispatcher = Proc("noisy-dispatcher", [py, "manage.py", "run_dispatcher"], env)
    port = free_port()
    web_url = f"http://127.0.0.1:{port}"
    web = Proc(
        "noisy-web",
        [py, "-m", "uvicorn", "stratbox.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        + ["--lifespan", "off", "--log-level", "warning"],
        env,
    )
    r = runtime.r()

    def window(label: str) -> dict:
        time.sleep(args.warmup)
        r.delete(runtime.METRICS_TICK_KEY, runtime.METRICS_ORDER_KEY, runtime.METRICS_BATCH_KEY)
        before = _coalesced(r, instances)
        long_cpu0 = tree_usage(long.proc.pid)[0]
        started = time.perf_counter()
        time.sleep(args.duration)
        elapsed = time.perf_counter() - started
        long_cpu = (tree_usage(long.proc.pid)[0] - long_cpu0) / elapsed * 100
        rows = [tuple(map(float, x.split(",")))[:3] for x in r.lrange(runtime.METRICS_TICK_KEY, 0, -1)]
        latency = [(t[2] - t[0]) * 1000 for t in rows]
        late = [(t[1] - t[0]) * 1000 for t in rows]
        result = {
            "tps": len(rows) / elapsed, "coalesced": _coalesced(r, instances) - before,
            "lat_p50": pct(latency, 50), "lat_p99": pct(latency, 99),
            "late_p50": pct(late, 50), "late_p99": pct(late, 99), "load": os.getloadavg()[0],
            "long_pool_cpu_pct": long_cpu,
            "backtests_running": Backtest.objects.filter(status="running").count(),
        }  # fmt: skip
        print(f"[{label}] {json.dumps({k: round(v, 2) for k, v in result.items()})}", flush=True)
        return result

    ctx = multiprocessing.get_context("fork")
    flooding, counts = ctx.Event(), ctx.Queue()
    try:
        alone = window("quiet tenant alone")
        # The neighbour: CPU-heavy backtests kept running (a new one whenever one ends), and floods.
        n = 200_000
        ts = 1_700_000_000 + 60 * np.arange(n, dtype=np.float64)
        close = 100 + np.sin(np.arange(n) / 50.0)
        bars = BarColumns(ts, close, close + 1, close - 1, close, np.ones(n))
        for _ in range(args.heavy * 4):
            backtest_create(
                tenant=noisy,
                actor=n_user,
                version=n_version,
                bars=BarsSpec(csv_bars=bars, csv_filename="n.csv"),
            )
        targets = [("/healthz", None), (diff_path, n_token)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the web server is up (any answer will do)
            try:
                urllib.request.urlopen(f"{web_url}/healthz", timeout=2).close()  # noqa: S310 - loopback
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)
        flooder = ctx.Process(
            target=_flood, args=(web_url, targets, args.floods, flooding, counts), daemon=True
        )
        flooder.start()
        neighbour = window("with heavy neighbour")
        flooding.set()
        print(f"[flood] requests by path and status: {json.dumps(counts.get(timeout=30))}")
    finally:
        flooding.set()
        stop.set()
        for proc in (web, dispatcher, ticks, long):
            proc.stop()
    return alone, neighbour


def _flood(web_url: str, targets: list, threads: int, stop, counts) -> None:  # type: ignore[no-untyped-def]
    """What a neighbour can do from outside: requests as fast as they return, on the real web server
    (its caches, throttles and limits apply; nothing is cleared for it). The client stands for
    machines of the neighbour's: it runs at the lowest CPU priority, so what the quiet tenant
    competes with is the server's work for these requests, not the client's."""
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def loop(path: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        while not stop.is_set():
            request = urllib.request.Request(f"{web_url}{path}", headers=headers)  # noqa: S310 - loopback
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            key = f"{path.split('/')[1]} {status}"
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    workers = [threading.Thread(target=loop, args=targets[k % 2], daemon=True) for k in range(threads)]
    for t in workers:
        t.start()
    stop.wait()
    for t in workers:
        t.join(timeout=15)
    counts.put(dict(sorted(statuses.items())))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _coalesced(r, instances) -> int:  # type: ignore[no-untyped-def]
    from stratbox.engine import runtime

    pipe = r.pipeline(transaction=False)
    for inst in instances:
        pipe.hget(runtime.rt_key(str(inst.pk)), "coalesced_ticks")
    return sum(int(v or 0) for v in pipe.execute())
