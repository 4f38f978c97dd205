"""Noisy-neighbour mode of the engine benchmark (`make bench-engine BENCH_ENGINE_ARGS=--noisy`).

A quiet tenant runs `--quiet` active paper instances every second. The tick latency of its ticks
(due -> done, and start lateness) is measured in windows of `--duration` seconds, on the same
real processes — a tick worker pool on the default queue, a long-work pool on
`<queue>.long`, the dispatcher:

1. alone;
2. while a heavy neighbour keeps `--heavy` CPU-bound backtests running (its plan lets all of them
   run at once, on a long-work pool of as many processes) and `--floods` threads send requests as
   fast as they return to the real web server (uvicorn): half anonymous health checks, half
   version diffs with the neighbour's token.

The two windows alternate for `--rounds` rounds (the neighbour's backtests are cancelled and the
flood paused between them), so the ratios of each round are measured side by side under the same
background load. It prints p50/p99 of every window with the load average, the CPU the web server
and the long pool took, and the ratio of the p99s (target: at most 1.5), per round and pooled.
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

from bench_engine import STRATEGY, Proc, bench_database, celery_worker, cleanup_redis, pct, tree_usage

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
    parser.add_argument("--rounds", type=int, default=3, help="alone / with-neighbour window pairs")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds measured per window")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before the first window")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds after switching the neighbour")
    parser.add_argument("--concurrency", type=int, default=2, help="tick worker processes")
    parser.add_argument("--floods", type=int, default=4, help="threads flooding the health check (0: none)")
    parser.add_argument(
        "--web-nice", type=int, default=None, help="nice added to the web server (default: make run's)"
    )
    args = parser.parse_args(argv)
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        print("set DATABASE_URL and REDIS_URL (make bench-engine does)", file=sys.stderr)
        return 2
    if args.web_nice is None:
        from stratbox.launcher import WEB_NICE

        args.web_nice = WEB_NICE
    plans = {
        "standard": {"max_instances": 100000, "min_frequency_seconds": 1, "backtests_running": 100, "backtests_queued": 1000}
    }  # fmt: skip
    with bench_database("noisy", {"STRATBOX_PLANS": json.dumps(plans), "STRATBOX_HTTPS": "0"}) as queue:
        rounds = run(args, queue)
    from django.conf import settings

    long_priority = f"{'SCHED_IDLE + ' if settings.STRATBOX_LONG_WORKER_IDLE else ''}nice {settings.STRATBOX_LONG_WORKER_NICE}"
    print()
    print("=" * 140)
    print(
        f"Noisy neighbour — {os.cpu_count()} CPUs, {args.quiet} quiet 1-s instances, tick pool x{args.concurrency}; "
        f"neighbour: {args.heavy} CPU-heavy backtests (long pool x{args.heavy}, {long_priority}) + "
        f"{args.floods} threads flooding /healthz and diffs over HTTP (web server at nice +{args.web_nice}); "
        f"{args.rounds} rounds of {args.duration:.0f} s windows, alone and with the neighbour alternately"
    )
    print(
        f"{'round':<6}{'phase':<16}{'ticks/s':>8}{'coalesced':>10}{'due→done p50':>14}{'p99':>10}"
        f"{'late p99':>10}{'load':>7}{'ticks cpu':>10}{'web cpu':>9}{'long cpu':>10}{'client cpu':>11}{'flood req/s':>12}{'p99 ratio':>11}"
    )
    for i, (alone, noisy) in enumerate(rounds, 1):
        for name, r in (("alone", alone), ("with neighbour", noisy)):
            ratio = f"{noisy['lat_p99'] / alone['lat_p99']:.2f}" if r is noisy and alone["lat_p99"] else ""
            print(
                f"{i:<6}{name:<16}{r['tps']:>8.1f}{r['coalesced']:>10}{r['lat_p50']:>11.1f} ms{r['lat_p99']:>7.1f} ms"
                f"{r['late_p99']:>7.1f} ms{r['load']:>7.2f}{r['ticks_cpu_pct']:>9.0f}%{r['web_cpu_pct']:>8.0f}%"
                f"{r['long_cpu_pct']:>9.0f}%{r['client_cpu_pct']:>10.0f}%"
                f"{r['flood_rps']:>12.0f}{ratio:>11}"
            )
    alone_all = [x for a, _ in rounds for x in a["latency"]]
    noisy_all = [x for _, n in rounds for x in n["latency"]]
    ratios = sorted(n["lat_p99"] / a["lat_p99"] for a, n in rounds if a["lat_p99"])
    pooled = pct(noisy_all, 99) / pct(alone_all, 99) if alone_all else float("nan")
    print(
        f"due→done p99, all windows pooled: alone {pct(alone_all, 99):.1f} ms, with neighbour "
        f"{pct(noisy_all, 99):.1f} ms — ratio {pooled:.2f} (target <= 1.5); per round: "
        f"{', '.join(f'{r:.2f}' for r in ratios)} (median {ratios[len(ratios) // 2]:.2f}); p50 "
        f"{pct(alone_all, 50):.1f} → {pct(noisy_all, 50):.1f} ms"
    )
    print("=" * 140)
    return 0


def run(args: argparse.Namespace, queue: str) -> list[tuple[dict, dict]]:
    import numpy as np
    from django.contrib.auth import get_user_model

    from sandbox import validate_source
    from stratbox.backtests.csvbars import BarColumns
    from stratbox.backtests.models import Backtest
    from stratbox.backtests.services import BarsSpec, backtest_cancel, backtest_create
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
    ticks = celery_worker("noisy-ticks", queue, "ticks", args.concurrency, env)
    long = celery_worker("noisy-long", f"{queue}.long", "long", args.heavy, env)
    dispatcher = Proc("noisy-dispatcher", [py, "manage.py", "run_dispatcher"], env)
    port = free_port()
    web_url = f"http://127.0.0.1:{port}"
    nice = ["nice", "-n", str(args.web_nice)] if args.web_nice > 0 else []  # as `make run` starts it
    web = Proc(
        "noisy-web",
        [*nice, py, "-m", "uvicorn", "stratbox.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
        + ["--lifespan", "off", "--log-level", "warning"],
        env,
    )
    r = runtime.r()
    n = 200_000  # bars: a backtest runs far longer than a window
    ts = 1_700_000_000 + 60 * np.arange(n, dtype=np.float64)
    close = 100 + np.sin(np.arange(n) / 50.0)
    bars = BarColumns(ts, close, close + 1, close - 1, close, np.ones(n))

    ctx = multiprocessing.get_context("fork")
    flooding, ended, counts = ctx.Event(), ctx.Event(), ctx.Queue()
    sent = ctx.Value("q", 0)

    def window(label: str, wait: float) -> dict:
        time.sleep(wait)
        r.delete(runtime.METRICS_TICK_KEY, runtime.METRICS_ORDER_KEY, runtime.METRICS_BATCH_KEY)
        before = _coalesced(r, instances)
        web_cpu0, long_cpu0, sent0 = tree_usage(web.proc.pid)[0], tree_usage(long.proc.pid)[0], sent.value
        ticks_cpu0, client_cpu0 = tree_usage(ticks.proc.pid)[0], _cpu(flooder)
        started = time.perf_counter()
        time.sleep(args.duration)
        elapsed = time.perf_counter() - started
        rows = [tuple(map(float, x.split(",")))[:3] for x in r.lrange(runtime.METRICS_TICK_KEY, 0, -1)]
        latency = [(t[2] - t[0]) * 1000 for t in rows]
        late = [(t[1] - t[0]) * 1000 for t in rows]
        result = {
            "tps": len(rows) / elapsed, "coalesced": _coalesced(r, instances) - before,
            "lat_p50": pct(latency, 50), "lat_p99": pct(latency, 99),
            "late_p50": pct(late, 50), "late_p99": pct(late, 99), "load": os.getloadavg()[0],
            "web_cpu_pct": (tree_usage(web.proc.pid)[0] - web_cpu0) / elapsed * 100,
            "long_cpu_pct": (tree_usage(long.proc.pid)[0] - long_cpu0) / elapsed * 100,
            "ticks_cpu_pct": (tree_usage(ticks.proc.pid)[0] - ticks_cpu0) / elapsed * 100,
            "client_cpu_pct": (_cpu(flooder) - client_cpu0) / elapsed * 100,
            "flood_rps": (sent.value - sent0) / elapsed,
            "backtests_running": Backtest.objects.filter(status="running").count(),
        }  # fmt: skip
        print(f"[{label}] {json.dumps({k: round(v, 2) for k, v in result.items()})}", flush=True)
        return {**result, "latency": latency}

    rounds: list[tuple[dict, dict]] = []
    flooder: multiprocessing.process.BaseProcess | None = None
    try:
        targets = [("/healthz", None), (diff_path, n_token)]
        if args.floods:
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
                target=_flood,
                args=(web_url, targets, args.floods, flooding, ended, sent, counts),
                daemon=True,
            )
            flooder.start()
        for i in range(1, args.rounds + 1):
            alone = window(f"round {i}: quiet tenant alone", args.warmup if i == 1 else args.settle)
            # The neighbour: CPU-heavy backtests running all window long, and the flood.
            running = [
                backtest_create(
                    tenant=noisy,
                    actor=n_user,
                    version=n_version,
                    bars=BarsSpec(csv_bars=bars, csv_filename="n.csv"),
                )  # fmt: skip
                for _ in range(args.heavy)
            ]
            flooding.set()
            neighbour = window(f"round {i}: with heavy neighbour", args.settle)
            flooding.clear()
            for bt in running:
                bt.refresh_from_db()
                if not bt.is_finished:
                    backtest_cancel(backtest=bt, actor=n_user)
            rounds.append((alone, neighbour))
        if flooder is not None:
            ended.set()
            print(f"[flood] requests by path and status: {json.dumps(counts.get(timeout=30))}")
    finally:
        ended.set()
        flooding.clear()
        stop.set()
        for proc in (web, dispatcher, ticks, long):
            proc.stop()
    return rounds


def _flood(web_url: str, targets: list, threads: int, flooding, ended, sent, counts) -> None:  # type: ignore[no-untyped-def]
    """What a neighbour can do from outside: requests as fast as they return, on the real web server
    (its caches, throttles and limits apply; nothing is cleared for it), while `flooding` is set.
    The client stands for machines of the neighbour's: it runs at the lowest CPU priority, so what
    the quiet tenant competes with is the server's work for these requests, not the client's."""
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def loop(path: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        while not ended.is_set():
            if not flooding.wait(0.2):
                continue
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
            with sent.get_lock():
                sent.value += 1

    workers = [threading.Thread(target=loop, args=targets[k % 2], daemon=True) for k in range(threads)]
    for t in workers:
        t.start()
    ended.wait()
    for t in workers:
        t.join(timeout=15)
    counts.put(dict(sorted(statuses.items())))


def _cpu(proc) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds of the flood client (0 without one)."""
    return tree_usage(proc.pid)[0] if proc is not None and proc.pid else 0.0


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
