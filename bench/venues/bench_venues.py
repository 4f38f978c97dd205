"""Live venues benchmark on loopback, through the real client library (alpaca-py) and real processes.

    DATABASE_URL=postgres://... REDIS_URL=redis://... python bench/venues/bench_venues.py [--sizes 1,100]

Starts venuesim's Alpaca app under uvicorn on 127.0.0.1 (in this process, so the venue's own order
times share this clock), points the platform at it with STRATBOX_VENUES the way a deployment does,
adds live accounts with their credentials (encrypted with a throwaway key) and syncs the venue's
catalogue. Then, in a throwaway database `<name>_bench_venues` next to DATABASE_URL's:

1. **quote → venue accept**: for each N, N approved live instances (`trigger = quote`) of a strategy
   that places one market order on every tick, tagged with the tick's quote time; a real
   `celery worker`, the engine's dispatcher and the venue feed (`manage.py run_venue_feed`: quote
   stream + user streams) run as their own processes; the venue's quote moves every `--every`
   seconds. Latency = the venue's own order creation time − the quote's time (stamped by the venue
   when it sends the quote frame, so: feed receipt, quote path, dispatch, sandbox tick, risk gate,
   journal, the alpaca-py POST).
2. **orders/s within the rate limit**: a second live account whose venue is configured at
   `--rate` orders/s (the Redis token bucket, burst `--burst`) while the loopback venue answers 429
   above `--venue-limit` requests/s; `--threads` threads place orders for `--rl-duration` seconds
   through `order_place` (journal, risk gate, bucket, alpaca-py); prints the achieved rate and 429s.
3. **quotes/s one feed ingests**: the feed's per-quote work (`quote_record` + `quote_set`, the quote
   path `run_venue_feed` calls for each streamed quote, marking quote-triggered subscribers) in a
   loop over `--markets` markets for `--ingest-seconds`.

Everything is printed as one table with the load average: the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench" / "engine"))

from bench_engine import Proc, bench_database, celery_worker, cleanup_redis, pct  # noqa: E402

STRATEGY = """
from sandbox.sdk import Strategy


class VenueBench(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {"side": "buy"}

    def on_tick(self, tick):
        self.context.place_order(self.state["side"], 0.01, tag="q" + str(int(tick.ts * 1000000)))
        self.state["side"] = "sell" if self.state["side"] == "buy" else "buy"
"""

RL_KEYS = {"api_key_id": "PKBENCHRATE0000001", "api_secret_key": "alpaca-sim-bench-rate"}


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,100")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between venue quote moves")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--no-user-streams", action="store_true", help="the feed streams quotes only (fills not applied)"
    )
    parser.add_argument(
        "--tick-batch", type=int, default=0, help="ENGINE_TICK_BATCH for the run (0: the engine's default)"
    )
    parser.add_argument("--rate", type=float, default=50.0, help="configured orders/s of the account")
    parser.add_argument("--burst", type=float, default=5.0)
    parser.add_argument("--venue-limit", type=int, default=60, help="the venue's own limit, requests/s")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rl-duration", type=float, default=20.0)
    parser.add_argument("--markets", type=int, default=50)
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    args = parser.parse_args()
    if "DATABASE_URL" not in os.environ or "REDIS_URL" not in os.environ:
        print("set DATABASE_URL and REDIS_URL (make bench-venues does)", file=sys.stderr)
        return 2

    from cryptography.fernet import Fernet

    from tests.venues.conftest import ALPACA_KEYS, alpaca_venue
    from venuesim import alpaca as alpaca_sim
    from venuesim.server import serve_in_thread

    venue = alpaca_venue()
    venue.add_account(RL_KEYS["api_key_id"], RL_KEYS["api_secret_key"], Decimal("1000000"))
    server = serve_in_thread(alpaca_sim.create_app(venue))
    base = {
        "adapter": "alpaca",
        "simulated": True,
        "label": "Alpaca (simulated)",
        "venue": "ALPACA",
        "trading_url": server.url,
        "data_url": server.url,
        "stream_url": server.url.replace("http://", "ws://") + "/v2/iex",
        "stale_after": 3,
        "poll_interval": 0.2,
        # The loopback venue trades around the clock (the bench must run at any hour), as the
        # demo's simulated venue does; a real Alpaca's equities keep their New York session.
        "hours": {},
    }
    venues = {
        "alpaca:sim": {**base, "rate_per_second": 5000, "burst": 5000},
        "alpaca:simrl": {**base, "rate_per_second": args.rate, "burst": args.burst},
    }
    env = {
        "STRATBOX_VENUES": json.dumps(venues),
        "STRATBOX_CREDENTIALS_KEYS": Fernet.generate_key().decode(),
        "STRATBOX_VENUE_CREDENTIALS_CHECK": "1",
    }
    rows: list[tuple[str, str]] = []
    try:
        with bench_database("venues", env) as queue:
            setup = prepare(ALPACA_KEYS)
            for size in [int(s) for s in args.sizes.split(",") if s]:
                rows.extend(latency_run(size, args, queue, venue, setup))
            rows.append(rate_run(args, venue, setup))
            rows.append(ingest_run(args, setup))
    finally:
        server.stop()
    print()
    print("=" * 100)
    print(
        f"Venues benchmark (loopback Alpaca, alpaca-py) — {os.cpu_count()} CPUs, worker prefork "
        f"x{args.concurrency}, load average now {load()}"
    )
    for name, figure in rows:
        print(f"{name:<58} {figure}")
    print("=" * 100)
    return 0


def prepare(keys: dict[str, str]) -> dict[str, Any]:
    """A tenant with a live account on each configured broker; the venue's catalogue synced."""
    from django.contrib.auth import get_user_model

    from sandbox import validate_source
    from stratbox.markets.models import Market
    from stratbox.trading.services.accounts import account_create
    from stratbox.trading.venue_accounts import adapter_for_account
    from stratbox.venues.catalogue import catalogue_sync
    from stratbox.venues.registry import venue_code
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.services import tenant_create

    cleanup_redis()
    user = get_user_model().objects.create_user(
        username="v@bench.local", email="v@bench.local", password=uuid.uuid4().hex
    )
    tenant = tenant_create(name="venue-bench", owner=user)
    tenant.capital_limit = Decimal("1000000000")
    tenant.save(update_fields=["capital_limit"])
    account = account_create(
        tenant=tenant,
        actor=None,
        name="Live (simulated Alpaca)",
        starting_balance=Decimal("100000"),
        kind="live",
        broker="alpaca:sim",
        credentials=keys,
    )
    rl_account = account_create(
        tenant=tenant,
        actor=None,
        name="Live rate-limited (simulated Alpaca)",
        starting_balance=Decimal("1000000"),
        kind="live",
        broker="alpaca:simrl",
        credentials=RL_KEYS,
    )
    catalogue_sync(adapter=adapter_for_account(account))
    market = Market.objects.get(venue=venue_code("alpaca:sim"), symbol="AAPL")
    assert market.trading_hours == {}, market.trading_hours
    report = validate_source(STRATEGY)
    definition = StrategyDefinition.objects.create(tenant=tenant, key="vbench", name="vbench")
    version = StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=STRATEGY,
        sha256=uuid.uuid4().hex,
        config_schema=report.config_schema,
    )
    return {
        "tenant": tenant,
        "account": account,
        "rl_account": rl_account,
        "market": market,
        "definition": definition,
        "version": version,
    }


def latency_run(
    size: int, args: argparse.Namespace, queue: str, venue: Any, s: dict[str, Any]
) -> tuple[str, str]:
    from django.db.models import Count

    from stratbox.engine.reconciler import reconcile
    from stratbox.instances.models import StrategyInstance
    from stratbox.trading.models import Order
    from stratbox.trading.services.accounts import account_create
    from tests.venues.conftest import approve

    StrategyInstance.objects.update(mode="off")
    # A fresh venue account per size: the previous size's last fills may still be in flight when
    # its feed stops, and the start-up reconcile would rightly pause instances on that account.
    keys = {"api_key_id": f"PKBENCHLAT{size:08d}", "api_secret_key": f"alpaca-sim-bench-{size}"}
    venue.add_account(keys["api_key_id"], keys["api_secret_key"], Decimal("1000000"))
    account = account_create(
        tenant=s["tenant"],
        actor=None,
        name=f"Live N={size} (simulated Alpaca)",
        starting_balance=Decimal("1000000"),
        kind="live",
        broker="alpaca:sim",
        credentials=keys,
    )
    instances = StrategyInstance.objects.bulk_create(
        [
            StrategyInstance(
                tenant=s["tenant"],
                name=f"vbench-{size}-{i}",
                strategy=s["definition"],
                version=s["version"],
                account=account,
                market=s["market"],
                trigger="quote",
                mode="active",
                total_capital=Decimal("50"),
                capital_per_trade=Decimal("50"),
                max_positions=5,
                max_position_size=Decimal("50"),
                max_daily_loss=Decimal("1000"),
            )
            for i in range(size)
        ]
    )
    for inst in instances:
        approve(inst, account)
    reconcile()

    stop = threading.Event()
    inst = venue.instruments["AAPL"]

    def move() -> None:
        step = Decimal("0.01")
        while not stop.wait(args.every):
            bid = inst.bid + step
            step = -step if bid > Decimal("187.50") or bid < Decimal("186.50") else step
            venue.set_quote("AAPL", bid, bid + Decimal("0.02"))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.tick_batch:
        env["ENGINE_TICK_BATCH"] = str(args.tick_batch)
    py = sys.executable
    worker = celery_worker(f"venues-worker-{size}", queue, f"vbench{size}", args.concurrency, env)
    dispatcher = Proc(f"venues-dispatcher-{size}", [py, "manage.py", "run_dispatcher"], env)
    feed = Proc(
        f"venues-feed-{size}",
        [
            py,
            "manage.py",
            "run_venue_feed",
            "--account",
            str(account.pk),
            "--no-sync",
            *(["--no-user-streams"] if args.no_user_streams else []),
        ],
        env,
    )
    mover = threading.Thread(target=move, daemon=True)
    try:
        mover.start()
        time.sleep(args.warmup)
        w0 = time.time()
        time.sleep(args.duration)
        w1 = time.time()
        window_load = load()
    finally:
        stop.set()
        feed.stop()
        dispatcher.stop()
        worker.stop()
    StrategyInstance.objects.filter(pk__in=[i.pk for i in instances]).update(mode="off")
    accepted = {o.client_order_id: o.created for o in list(venue.orders.values()) if w0 <= o.created < w1}
    rows = Order.objects.filter(instance__in=instances, venue_client_order_id__in=list(accepted)).values_list(
        "venue_client_order_id", "tag", "created_at", "sent_at"
    )
    latency, to_journal, to_send = [], [], []
    for cid, tag, created, sent in rows:
        if not tag.startswith("q") or sent is None:
            continue
        quote_ts = int(tag[1:]) / 1e6
        latency.append((accepted[cid] - quote_ts) * 1000)
        to_journal.append((created.timestamp() - quote_ts) * 1000)  # feed, quote path, dispatch, tick
        to_send.append((accepted[cid] - sent.timestamp()) * 1000)  # claimed for the send -> venue accept
    statuses = _by_status(
        Order.objects.filter(instance__in=instances, created_at__gte=_dt(w0), created_at__lt=_dt(w1))
    )
    quotes = args.duration / args.every
    from stratbox.engine.models import Run

    runs = Run.objects.filter(instance__in=instances)
    print(
        f"[N={size}] orders by status in the window: {statuses}; runs by status: "
        f"{dict(runs.values_list('status').annotate(n=Count('id')))}",
        flush=True,
    )
    from stratbox.engine.models import VenueDiscrepancy

    for d in VenueDiscrepancy.objects.filter(account=account)[:3]:
        print(f"[N={size}] discrepancy: {d.kind} {d.subject} ours {d.ours} theirs {d.theirs}", flush=True)
    for run in runs.exclude(status="ok")[:3]:
        print(f"[N={size}] {run.status}: {run.error_code} {run.error_message:.300}", flush=True)
    return (
        f"quote → venue accept, N = {size:>4} quote-triggered live",
        f"p50 {pct(latency, 50):6.1f} ms  p99 {pct(latency, 99):6.1f} ms  "
        f"({len(latency)} orders, {len(latency) / quotes:.1f}/quote, load {window_load})",
    ), (
        "  split: quote → order created_at (tick) / send claimed → venue accept",
        f"p50 {pct(to_journal, 50):6.1f} / {pct(to_send, 50):.1f} ms  "
        f"p99 {pct(to_journal, 99):6.1f} / {pct(to_send, 99):.1f} ms",
    )


def _by_status(orders: Any) -> dict[str, int]:
    """Orders counted by status (and deny code, where there is one)."""
    out: dict[str, int] = {}
    for status, code in orders.values_list("status", "deny_code"):
        key = f"{status} {code}".strip()
        out[key] = out.get(key, 0) + 1
    return out


def _dt(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC)


def rate_run(args: argparse.Namespace, venue: Any, s: dict[str, Any]) -> tuple[str, str]:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from stratbox.trading.models import Order
    from tests.trading.conftest import make_instance
    from tests.venues.conftest import approve

    # One instance per thread (the per-instance lock and position are not what is measured), and
    # the risk gate's per-instance orders/minute cap lifted in this process: the venue account's
    # token bucket is the limit under test.
    settings.STRATBOX_MAX_ORDERS_PER_MINUTE = 10**9
    placers = []
    for _k in range(args.threads):
        instance = make_instance(
            s["tenant"],
            s["rl_account"],
            s["market"],
            total_capital=Decimal("10000"),
            capital_per_trade=Decimal("10000"),
            max_position_size=Decimal("10000"),
            max_daily_loss=Decimal("10000"),
            max_positions=1000,
        )
        approve(instance, s["rl_account"])
        placers.append(instance)
    from stratbox.trading.services.orders import order_place

    venue.rate_limit, venue.rate_window = args.venue_limit, 1.0
    limited0 = venue.rate_limited
    stop = threading.Event()
    counts = [0] * args.threads
    inst = venue.instruments["AAPL"]

    def placer(k: int) -> None:
        instance = placers[k]
        n = 0
        try:
            while not stop.is_set():
                n += 1
                bid, ask = float(inst.bid), float(inst.ask)
                order_place(
                    instance=instance,
                    intent={
                        "kind": "order",
                        "client_order_id": f"{instance.pk}-{k}-{n}",
                        "side": "buy" if n % 2 else "sell",
                        "qty": 0.01,
                        "type": "market",
                        "price": None,
                        "tag": None,
                    },
                    quote={
                        "price": (bid + ask) / 2,
                        "bid": bid,
                        "ask": ask,
                        "volume": 1.0,
                        "ts": time.time(),
                    },
                    mode="active",
                    now=timezone.now(),
                )
                counts[k] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=placer, args=(k,), daemon=True) for k in range(args.threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.rl_duration)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.perf_counter() - t0
    venue.rate_limit = 0
    orders = Order.objects.filter(instance__in=placers)
    accepted = orders.exclude(venue_order_id="").count()
    limited = venue.rate_limited - limited0
    by_status = _by_status(orders)
    print(f"[rate] orders by status: {by_status}", flush=True)
    return (
        f"orders/s, one account at {args.rate:g}/s (burst {args.burst:g}), {args.threads} threads",
        f"{accepted / elapsed:6.1f} orders/s accepted  ({accepted} in {elapsed:.1f} s; venue 429s: {limited}, "
        f"venue limit {args.venue_limit}/s; load {load()})",
    )


def ingest_run(args: argparse.Namespace, s: dict[str, Any]) -> tuple[str, str]:
    from stratbox.markets.models import Market
    from stratbox.markets.quotes import quote_set
    from stratbox.venues.base import Quote
    from stratbox.venues.catalogue import quote_record

    markets = [
        Market.objects.create(venue="ALPACA", symbol=f"BQ{i:03d}", venue_symbol=f"BQ{i:03d}")
        for i in range(args.markets)
    ]
    markets.append(s["market"])  # the one with the quote-triggered subscribers
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + args.ingest_seconds
    while time.perf_counter() < deadline:
        for m in markets:
            bid = Decimal("100.00") + Decimal(n % 100) / 100
            quote_set(m.pk, quote_record(m, Quote(m.symbol, bid, bid + Decimal("0.02"), time.time())))
            n += 1
    elapsed = time.perf_counter() - t0
    return (
        f"quotes/s one feed ingests ({len(markets)} markets)",
        f"{n / elapsed:8.0f} quotes/s  (quote_record + quote_set, {n} quotes; load {load()})",
    )


if __name__ == "__main__":
    raise SystemExit(main())
