"""Benchmark: dashboard event latency, worker publish -> websocket client, with 1 / 100 / 500 clients.

The real stack on loopback: the ASGI app (`stratbox.asgi:application`) under uvicorn in its own
process; N websocket clients (the `websockets` package) on `ws/instances/<uuid>/`, authenticated
with a real API token; a publisher in a third process sending through the Channels layer exactly as
a Celery worker does (`group_send("instance.<uuid>", {"type": "instance.event", ...})`).

Per client count, two phases:
- latency: `--events` events at `--rate`/s; latency = receive time - the event's `ts` (one clock,
  one machine), over every (event, client) pair: p50, p99, max.
- throughput: `--burst` events as fast as the publisher can send; delivered frames per second
  across all clients (first publish -> last receipt), and frames lost (outbox drops/seq gaps).

Run with `make bench-live` (DATABASE_URL / REDIS_URL point at the local servers). It creates its
own tenant, user, token and instance (`bench-live@stratbox.local`) and reuses them.
Target: p99 < 50 ms at 500 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

BENCH_EMAIL = "bench-live@stratbox.local"
CLIENT_COUNTS = (1, 100, 500)


# --- setup (Django ORM, this process) -------------------------------------------------------


def prepare() -> tuple[str, str]:
    """(instance id, token plaintext) for the bench tenant, created once and reused."""
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from stratbox.instances.models import StrategyInstance
    from stratbox.markets.models import Market
    from stratbox.trading.models import Account
    from strategies_store.models import StrategyDefinition, StrategyVersion
    from tenants.models import Membership
    from tenants.services import tenant_create, token_create

    user, _ = get_user_model().objects.get_or_create(username=BENCH_EMAIL, defaults={"email": BENCH_EMAIL})
    membership = Membership.objects.filter(user=user).select_related("tenant").first()
    tenant = membership.tenant if membership else tenant_create(name="Bench live", owner=user)
    instance = StrategyInstance.objects.filter(tenant=tenant, name="bench-live").first()
    if instance is None:
        market, _ = Market.objects.get_or_create(venue="BENCH", symbol="LIVE/USD")
        account, _ = Account.objects.get_or_create(
            tenant=tenant, name="bench-live", defaults={"kind": "paper"}
        )
        definition, _ = StrategyDefinition.objects.get_or_create(
            tenant=tenant, key="bench-live", defaults={"name": "bench-live"}
        )
        version = StrategyVersion.objects.filter(
            definition=definition
        ).first() or StrategyVersion.objects.create(
            definition=definition, number=1, source="x = 1", sha256=uuid.uuid4().hex
        )
        instance = StrategyInstance.objects.create(
            tenant=tenant,
            name="bench-live",
            strategy=definition,
            version=version,
            account=account,
            market=market,
            mode="observe",
            total_capital=Decimal("1000"),
            capital_per_trade=Decimal("100"),
            max_positions=1,
            max_position_size=Decimal("1"),
            max_daily_loss=Decimal("100"),
        )
    token = token_create(tenant=tenant, user=user, name=f"bench-live {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return str(instance.pk), token.plaintext


def revoke_bench_token(plaintext: str) -> None:
    from tenants.models import ApiToken
    from tenants.services import token_digest

    ApiToken.objects.filter(digest=token_digest(plaintext)).update(revoked_at=_now())


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


# --- the publisher (a separate process, like a worker) ----------------------------------------


def publish(group: str, instance_id: str, count: int, rate: float, first_seq: int) -> None:
    """Send `count` events (rate 0 = as fast as possible); print {"sent", "elapsed", "t0"}."""
    import django

    django.setup()
    from channels.layers import get_channel_layer

    async def run() -> dict[str, float]:
        layer = get_channel_layer()
        t0 = time.time()
        started = time.perf_counter()
        for i in range(count):
            if rate > 0:
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await layer.group_send(
                group,
                {
                    "type": "instance.event",
                    "kind": "action",
                    "instance_id": instance_id,
                    "data": {"side": "buy", "qty": 1.0, "status": "shadow"},
                    "seq": first_seq + i,
                    "ts": time.time(),
                },
            )
        return {"sent": count, "elapsed": time.perf_counter() - started, "t0": t0}

    print(json.dumps(asyncio.run(run())), flush=True)


def run_publisher(instance_id: str, count: int, rate: float, first_seq: int) -> dict[str, float]:
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--publish",
            f"instance.{instance_id}",
            instance_id,
            str(count),
            str(rate),
            str(first_seq),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, ws: str) -> subprocess.Popen[bytes]:
    log = (ROOT / "var").joinpath("bench-live-uvicorn.log")
    log.parent.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "stratbox.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws",
            ws,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# --- the clients --------------------------------------------------------------------------------


class Clients:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.sockets: list[Any] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.latencies: list[float] = []
        self.received = 0
        self.last_receipt = 0.0
        self.dropped = 0
        self.recording = False

    async def open(self, count: int) -> None:
        from websockets.asyncio.client import connect

        async def one() -> None:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                max_queue=None,
                ping_interval=None,
                open_timeout=30,
            )
            hello = json.loads(await ws.recv())
            assert hello["kind"] == "hello", hello
            self.sockets.append(ws)
            self.tasks.append(asyncio.create_task(self._read(ws)))

        # Connect in batches so the handshake storm does not measure accept() latency.
        for start in range(len(self.sockets), count, 50):
            await asyncio.gather(*(one() for _ in range(min(50, count - start))))

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            kind = message.get("kind")
            if kind == "action":
                self.received += 1
                self.last_receipt = now
                if self.recording:
                    self.latencies.append(now - message["ts"])
            elif kind in ("events_dropped", "log_dropped"):
                self.dropped += message["count"]

    def reset(self, recording: bool) -> None:
        self.latencies = []
        self.received = 0
        self.dropped = 0
        self.recording = recording

    async def wait_for(self, expected: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.received + self.dropped < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def bench(url: str, token: str, instance_id: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    clients = Clients(url, token)
    rows = []
    seq = 1
    try:
        for count in args.clients:
            await clients.open(count)
            await asyncio.sleep(0.5)

            clients.reset(recording=True)
            pub = await asyncio.to_thread(run_publisher, instance_id, args.events, args.rate, seq)
            seq += args.events
            await clients.wait_for(args.events * count, timeout=30)
            lat = [x * 1000 for x in clients.latencies]
            latency = {
                "p50": pct(lat, 0.50),
                "p99": pct(lat, 0.99),
                "max": max(lat) if lat else float("nan"),
                "mean": statistics.fmean(lat) if lat else float("nan"),
                "lost": args.events * count - len(lat),
                "publish_s": pub["elapsed"],
            }

            burst = max(50, min(args.burst, args.burst_frames // count))
            clients.reset(recording=False)
            pub = await asyncio.to_thread(run_publisher, instance_id, burst, 0.0, seq)
            seq += burst
            await clients.wait_for(burst * count, timeout=60)
            span = max(clients.last_receipt - pub["t0"], 1e-9)
            rows.append(
                {
                    "clients": count,
                    **latency,
                    "burst": burst,
                    "burst_publish_per_s": burst / pub["elapsed"],
                    "delivered_per_s": clients.received / span,
                    "burst_lost": burst * count - clients.received,
                }
            )
            print(
                f"  {count:>3} clients: p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
                f"{rows[-1]['delivered_per_s']:,.0f} frames/s",
                flush=True,
            )
    finally:
        await clients.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100, help="events per latency phase (default 100)")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="latency-phase events per second (default 20)"
    )
    parser.add_argument(
        "--burst", type=int, default=2000, help="throughput-phase events, at most (default 2000)"
    )
    parser.add_argument(
        "--burst-frames", type=int, default=50_000, help="cap on burst events x clients (default 50,000)"
    )
    parser.add_argument(
        "--clients",
        type=lambda v: [int(x) for x in v.split(",")],
        default=list(CLIENT_COUNTS),
        help="client counts (default 1,100,500)",
    )
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn websocket implementation")
    parser.add_argument(
        "--publish", nargs=5, metavar=("GROUP", "IID", "N", "RATE", "SEQ"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.publish:
        group, iid, n, rate, first = args.publish
        publish(group, iid, int(n), float(rate), int(first))
        return

    instance_id, token = prepare()
    port = free_port()
    server = start_server(port, args.ws)
    url = f"ws://127.0.0.1:{port}/ws/instances/{instance_id}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("uvicorn did not start; see var/bench-live-uvicorn.log") from None
                time.sleep(0.1)
        print(
            f"bench-live: uvicorn --ws {args.ws} on 127.0.0.1:{port}, {os.cpu_count()} CPUs, load "
            f"{os.getloadavg()[0]:.1f}; latency phase {args.events} events "
            f"at {args.rate:g}/s, throughput phase up to {args.burst} events",
            flush=True,
        )
        try:
            import uvloop  # installed with uvicorn[standard]; the server uses it too

            rows = uvloop.run(bench(url, token, instance_id, args))
        except ImportError:
            rows = asyncio.run(bench(url, token, instance_id, args))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        revoke_bench_token(token)

    print()
    print(
        "| clients | p50 ms | p99 ms | max ms | lost | burst events | publish ev/s | delivered frames/s | burst lost |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['clients']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['lost']} | {r['burst']} "
            f"| {r['burst_publish_per_s']:,.0f} | {r['delivered_per_s']:,.0f} | {r['burst_lost']} |"
        )
    last = rows[-1]
    verdict = "OK" if last["p99"] < 50 else "MISSED"
    print(f"\ntarget p99 < 50 ms at {last['clients']} clients: {verdict} ({last['p99']:.1f} ms)")


if __name__ == "__main__":
    main()
