"""CPU per tick of the engine's batch path in one process (no Celery): for side-by-side comparisons.

    .venv/bin/python bench/engine/bench_tick_cpu.py REPO [--n 200] [--rounds 20] [--profile out.prof]

REPO is a checkout whose code is measured (this one, or a `git worktree` of an older commit, run
with this checkout's virtualenv). N active paper instances of the engine benchmark's strategy (an
order every 10 ticks) over 4 tenants tick once a second through `tick_run_batch`, in batches of
`--batch`; the worker's CPU and its sandbox hosts' CPU per OK tick are printed. CPU time moves far
less with the machine's load than latency does: run two checkouts one after the other, alternating,
and compare. `--profile` writes cProfile stats of the measured rounds (pstats, snakeviz).
It works in its own database (`--db`, dropped and created) and Redis DB (`--redis`, flushed).
"""

import argparse
import os
import sys
import time
import uuid
from decimal import Decimal

ap = argparse.ArgumentParser()
ap.add_argument("repo")
ap.add_argument("--n", type=int, default=200)
ap.add_argument("--rounds", type=int, default=20)
ap.add_argument("--batch", type=int, default=50)
ap.add_argument("--profile", default="")
ap.add_argument("--db", default="stratbox_cputick")
ap.add_argument("--redis", default="redis://127.0.0.1:6379/14")
args = ap.parse_args()
sys.path.insert(0, args.repo)
sys.path.insert(1, os.path.join(args.repo, "bench", "engine"))
os.chdir(args.repo)
import psycopg  # noqa: E402

with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
    c.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    c.execute(f'CREATE DATABASE "{args.db}"')
os.environ.update(
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{args.db}",
    REDIS_URL=args.redis,
    DJANGO_SETTINGS_MODULE="stratbox.settings",
    LOG_LEVEL="WARNING",
    CELERY_QUEUE=f"cpu-{uuid.uuid4().hex[:6]}",
)
import django  # noqa: E402

django.setup()
import psutil  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)
from bench_engine import STRATEGY  # noqa: E402

from sandbox import validate_source  # noqa: E402
from stratbox.engine import runtime  # noqa: E402

try:
    from stratbox.engine.ticks import batch as execution  # noqa: E402
except ImportError:
    from stratbox.engine import execution  # noqa: E402 - a checkout from before engine/ticks
from stratbox.engine.reconciler import reconcile  # noqa: E402
from stratbox.instances.models import StrategyInstance  # noqa: E402
from stratbox.markets.models import Market  # noqa: E402
from stratbox.markets.quotes import quote_set  # noqa: E402
from stratbox.trading.models import Account  # noqa: E402
from strategies_store.models import StrategyDefinition, StrategyVersion  # noqa: E402
from tenants.services import tenant_create  # noqa: E402

r = runtime.r()
r.flushdb()
market, _ = Market.objects.get_or_create(venue="SIM", symbol="BENCH", defaults={"sim_start_price": 100})
report = validate_source(STRATEGY)
User = get_user_model()
instances = []
for t in range(4):
    user = User.objects.create_user(
        username=f"c{t}@b.local", email=f"c{t}@b.local", password=uuid.uuid4().hex
    )
    tenant = tenant_create(name=f"cpu-{t}", owner=user)
    tenant.capital_limit = Decimal("1000000000")
    tenant.save(update_fields=["capital_limit"])
    account = Account.objects.create(
        tenant=tenant,
        name="Paper",
        kind="paper",
        balance=Decimal("10000000"),
        starting_balance=Decimal("10000000"),
    )
    d = StrategyDefinition.objects.create(tenant=tenant, key="bench", name="bench")
    v = StrategyVersion.objects.create(
        definition=d, number=1, source=STRATEGY, sha256=uuid.uuid4().hex, config_schema=report.config_schema
    )
    instances += [
        StrategyInstance(
            tenant=tenant,
            name=f"b-{i}",
            strategy=d,
            version=v,
            account=account,
            market=market,
            config={"every": 10, "offset": i % 10},
            frequency_seconds=1,
            mode="active",
            max_positions=1000,
            max_position_size=Decimal("100000"),
            max_daily_loss=Decimal("1000000"),
        )
        for i in range(args.n // 4)
    ]
StrategyInstance.objects.bulk_create(instances)


def q(p):
    quote_set(
        market.id,
        {
            "market": market.code,
            "price": p,
            "bid": p - 0.01,
            "ask": p + 0.01,
            "volume": 1.0,
            "ts": time.time(),
        },
    )


q(100.0)
reconcile()
ids = [str(i.pk) for i in StrategyInstance.objects.order_by("pk")]
me = psutil.Process()


def cpu():
    total = me.cpu_times().user + me.cpu_times().system
    for c in me.children(recursive=True):
        try:
            t = c.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def rounds(k):
    done = 0
    for n in range(k):
        slot = int(time.time()) + 1
        while time.time() < slot:
            time.sleep(0.01)
        q(100.0 + (n % 7) * 0.1)
        for b in range(0, len(ids), args.batch):
            out = execution.tick_run_batch([(iid, float(slot)) for iid in ids[b : b + args.batch]])
            done += sum(1 for o in out if o.status == "ok")
    return done


rounds(3)  # warm-up
prof = None
if args.profile:
    import cProfile

    prof = cProfile.Profile()
c0, w0 = cpu(), time.process_time()
if prof:
    prof.enable()
ok = rounds(args.rounds)
if prof:
    prof.disable()
    prof.dump_stats(args.profile)
c1, w1 = cpu(), time.process_time()
print(
    f"{args.repo}: {ok} ok ticks; CPU per tick: worker+hosts {(c1 - c0) / ok * 1000:.3f} ms, worker {(w1 - w0) / ok * 1000:.3f} ms"
)
from django.db import connections  # noqa: E402

connections.close_all()
r.flushdb()
