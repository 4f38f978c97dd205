"""Sandbox benchmark (printed figures, not timed tests): ``make bench-sandbox``.

1. SMA(10/20) crossover (the catalog strategy) over 1,000,000 seeded random-walk bars: plain
   Python in-process vs sandboxed inside a host (same backtest loop and paper broker, bars sent
   in chunks of 100,000) -> bars/s of each and the ratio.
2. Tick round trip through the host for a trivial on_tick: p50/p99 and ticks/s.
3. Host start-up time (a fresh spawn to ready, and what a new tenant's first call waits when the
   pre-spawned spare is ready) and idle memory per host: RSS and PSS of the host and of its keeper
   (the parent outside its PID namespace).

``STRATBOX_BENCH_ROOT`` points the benchmark at another checkout's ``sandbox`` package (to measure
a "before" with the same method).
"""

from __future__ import annotations

import gc
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("STRATBOX_BENCH_ROOT") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(ROOT))

from sandbox import Limits, SandboxClient  # noqa: E402
from sandbox.backtest import run_backtest  # noqa: E402
from sandbox.runtime import Instance  # noqa: E402

N_BARS = 1_000_000
CHUNK = 100_000
ROUNDS = 3  # best of: the machine's load moves single runs
SMA = (Path(__file__).resolve().parents[2] / "strategies_store" / "catalog" / "sma_crossover.py").read_text()
TRIVIAL = (
    "from sandbox.sdk import Strategy\n\nclass T(Strategy):\n    def on_tick(self, tick):\n        pass\n"
)
PARAMS = {"slippage_bps": 2.0, "fee_bps": 5.0, "starting_balance": 100000.0}


def bars(n: int, seed: int = 42) -> dict[str, list[float]]:
    rng = random.Random(seed)
    price = 100.0
    cols: dict[str, list[float]] = {k: [] for k in ("ts", "open", "high", "low", "close", "volume")}
    for i in range(n):
        o = price
        price = max(1.0, price * math.exp(rng.gauss(0, 0.002)))
        cols["ts"].append(1.7e9 + 60.0 * i)
        cols["open"].append(o)
        cols["high"].append(max(o, price) * 1.001)
        cols["low"].append(min(o, price) * 0.999)
        cols["close"].append(price)
        cols["volume"].append(1.0)
    return cols


def chunks(cols: dict[str, list[float]]) -> list[dict[str, list[float]]]:
    n = len(cols["close"])
    return [{k: v[i : i + CHUNK] for k, v in cols.items()} for i in range(0, n, CHUNK)]


def bench_backtest(parts: list[dict[str, list[float]]]) -> tuple[float, float, float, float, int, int]:
    """Plain and sandboxed runs interleaved chunk by chunk (both see the same machine load).

    Returns wall seconds (plain, sandboxed), CPU seconds (plain; sandboxed = client + host) and trades.
    """
    limits = Limits(backtest_timeout=120.0)
    inst = Instance(
        "plain",
        style="tick",
        sources={"strategy.py": SMA},
        config={},
        state=None,
        seed=1,
        limits=limits,
        restricted=False,
    )
    plain = sandboxed = plain_cpu = sandboxed_cpu = 0.0
    plain_trades = sandboxed_trades = 0
    with SandboxClient(limits, max_hosts=1, prespawn=False) as client:
        client.load("bench", "sma", source=SMA, config={}, seed=1)
        host_pid = int(client.host_info("bench")["pid"])
        for part in parts:
            c0, t0 = time.process_time(), time.perf_counter()
            plain_trades += len(run_backtest(inst, part, PARAMS, None)["trades"])
            plain += time.perf_counter() - t0
            plain_cpu += time.process_time() - c0
            h0, c0, t0 = _cpu_seconds(host_pid), time.process_time(), time.perf_counter()
            sandboxed_trades += len(client.backtest("bench", "sma", part, PARAMS)["trades"])
            sandboxed += time.perf_counter() - t0
            sandboxed_cpu += time.process_time() - c0 + _cpu_seconds(host_pid) - h0
    return plain, sandboxed, plain_cpu, sandboxed_cpu, plain_trades, sandboxed_trades


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _realtime(pids: list[int], on: bool) -> bool:
    """SCHED_FIFO for the measuring process and its host (root only): takes other jobs out of the picture."""
    try:
        for pid in pids:
            if on:
                os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(10))
            else:
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    except (PermissionError, OSError):
        return False
    return True


def bench_ticks(n: int = 20_000, warmup: int = 2_000) -> list[str]:
    """Tick round trips: percentiles, throughput, CPU per tick on each side, with the load average.

    The tail of a round trip on a shared machine is CPU contention (two wake-ups per tick); the
    scheduler-isolated run (SCHED_FIFO, when permitted) shows the sandbox's own tail.
    """
    lines: list[str] = []
    with SandboxClient(max_hosts=1, prespawn=False) as client:
        client.load("bench", "t", source=TRIVIAL, config={})
        host_pid = int(client.host_info("bench")["pid"])
        snap = {
            "mode": "observe",
            "now": 1.0,
            "quote": {"market": "X", "price": 1.0, "bid": 1.0, "ask": 1.0, "ts": 1.0},
            "orders": [],
            "position": None,
            "positions": [],
            "balance": "1000",
            "order_id_prefix": "b",
        }
        tick = {"market": "X", "ts": 1.0, "price": 1.0, "bid": 1.0, "ask": 1.0, "volume": 1.0}

        def run(label: str) -> None:
            for _ in range(warmup):
                client.tick("bench", "t", tick, snap)
            lat = []
            load = os.getloadavg()[0]
            host_cpu, own_cpu = _cpu_seconds(host_pid), time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                s = time.perf_counter_ns()
                client.tick("bench", "t", tick, snap)
                lat.append(time.perf_counter_ns() - s)
            total = time.perf_counter() - t0
            host_us = (_cpu_seconds(host_pid) - host_cpu) / n * 1e6
            own_us = (time.process_time() - own_cpu) / n * 1e6
            lat.sort()

            def q(p: float) -> float:
                return lat[min(n - 1, int(n * p))] / 1e6

            lines.append(
                f"  {label}: p50 {q(0.5):.3f} ms, p90 {q(0.9):.3f} ms, p99 {q(0.99):.3f} ms, "
                f"p99.9 {q(0.999):.3f} ms, max {lat[-1] / 1e6:.2f} ms; {n / total:,.0f} ticks/s; "
                f"CPU per tick: host {host_us:.0f} us, client {own_us:.0f} us; "
                f"load average {load:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
            )

        run("normal scheduling      ")
        gc.collect()
        if _realtime([0, host_pid], True):
            try:
                run("SCHED_FIFO (isolated)  ")
            finally:
                _realtime([0, host_pid], False)
    return lines


def _kib(pid: int, path: str, field: str) -> float:
    try:
        text = Path(f"/proc/{pid}/{path}").read_text()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith(field + ":")), 0)


def bench_startup(n: int = 7) -> dict[str, object]:
    """Fresh spawns to ready; a new tenant's first call with the spare ready; idle memory per host."""
    times, first_call, host_rss, keeper_rss, pss, boot_cpu = [], [], [], [], [], []
    layers: dict[str, object] = {}
    for i in range(n):
        with SandboxClient(max_hosts=2, prespawn=True) as client:
            t0 = time.perf_counter()
            info = client.host_info(f"s{i}")  # no spare yet: a fresh spawn
            times.append(time.perf_counter() - t0)
            layers = info["layers"]  # type: ignore[assignment]
            spare = client._spare  # noqa: SLF001 - the benchmark waits for the spare to be ready
            if spare is not None:
                spare.wait_ready()
            t0 = time.perf_counter()
            client.host_info(f"next{i}")  # a new tenant: served by the ready spare
            first_call.append(time.perf_counter() - t0)
            time.sleep(0.2)
            pid = int(info["pid"])
            host_rss.append(_kib(pid, "status", "VmRSS") / 1024)
            keeper = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            is_keeper = keeper != os.getpid()
            keeper_rss.append(_kib(keeper, "status", "VmRSS") / 1024 if is_keeper else 0.0)
            boot_cpu.append(_cpu_seconds(pid) + (_cpu_seconds(keeper) if is_keeper else 0.0))
            pss.append(
                (_kib(pid, "smaps_rollup", "Pss") + (_kib(keeper, "smaps_rollup", "Pss") if is_keeper else 0))
                / 1024
            )
    return {
        "spawn_ms": statistics.median(times) * 1e3,
        "spawn_min_ms": min(times) * 1e3,
        "first_call_ms": statistics.median(first_call) * 1e3,
        "host_rss": statistics.median(host_rss),
        "keeper_rss": statistics.median(keeper_rss),
        "pss": statistics.median(pss),
        "layers": layers,
        "boot_cpu_ms": statistics.median(boot_cpu) * 1e3,
    }


def main() -> None:
    print(f"Stratbox sandbox benchmark (Python {sys.version.split()[0]}, sandbox from {ROOT})")
    st = bench_startup()
    print(
        f"host start-up: fresh spawn to ready median {st['spawn_ms']:.0f} ms (min {st['spawn_min_ms']:.0f} ms); "
        f"a new tenant's first call with the spare ready: {st['first_call_ms']:.1f} ms; "
        f"CPU to boot (host + keeper): {st['boot_cpu_ms']:.0f} ms"
    )
    print(
        f"idle memory per host: host RSS {st['host_rss']:.1f} MiB, keeper RSS {st['keeper_rss']:.1f} MiB, "
        f"PSS host + keeper {st['pss']:.1f} MiB; load average {os.getloadavg()[0]:.2f}"
    )
    print(f"confinement layers: {st['layers']}")
    print("tick round trip (trivial on_tick, 20,000 ticks after 2,000 warm-up):")
    for line in bench_ticks():
        print(line)
    cols = bars(N_BARS)
    parts = chunks(cols)
    load = os.getloadavg()[0]
    runs = [bench_backtest(parts) for _ in range(ROUNDS)]
    for run in runs:
        assert run[4] == run[5] == runs[0][4], (
            f"plain and sandboxed runs disagree: {run[4]} vs {run[5]} trades"
        )
    plain, sandboxed = min(r[0] for r in runs), min(r[1] for r in runs)
    plain_cpu, sandboxed_cpu = min(r[2] for r in runs), min(r[3] for r in runs)
    print(
        f"SMA(10/20) crossover, {N_BARS:,} bars in {len(parts)} chunks ({runs[0][4]:,} round-trip trades), "
        f"plain and sandboxed interleaved per chunk, best of {ROUNDS} rounds, load average {load:.2f} -> {os.getloadavg()[0]:.2f}:"
    )
    print(f"  plain Python in-process: {plain:.2f} s = {N_BARS / plain:,.0f} bars/s ({plain_cpu:.2f} s CPU)")
    print(
        f"  sandboxed in host:       {sandboxed:.2f} s = {N_BARS / sandboxed:,.0f} bars/s ({sandboxed_cpu:.2f} s CPU, client + host)"
    )
    print(
        f"  ratio sandboxed/plain:   {sandboxed / plain:.2f}x wall, {sandboxed_cpu / plain_cpu:.2f}x CPU (target <= 1.2x); "
        f"per round (wall): {', '.join(f'{r[1] / r[0]:.2f}x' for r in runs)}"
    )


if __name__ == "__main__":
    main()
