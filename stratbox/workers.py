"""Worker liveness without a broker round trip: every Celery worker refreshes a heartbeat in Redis.

`celery inspect ping` (a broadcast and a wait for replies) costs a broker connection per call and,
from a web request, held one pooled connection while waiting for a second: ~20 concurrent health
checks wedged the web process's broker pool. Instead each worker process's main thread starts a
daemon thread that writes `{hostname: now}` into one sorted set every `HEARTBEAT_SECONDS`, with the
queues it consumes; the health check reads the set (one Redis round trip, no Celery at all).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
# A worker counts as alive while its last heartbeat is younger than this.
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
BEATS_KEY = "stratbox:workers:beat"  # sorted set: hostname -> unix time of its last heartbeat
QUEUES_KEY = "stratbox:workers:queues"  # hash: hostname -> JSON list of the queues it consumes

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def client() -> redis.Redis:
    """A small, bounded pool: a flood of health checks waits for a connection (1 s at most) instead
    of opening one per request."""
    global _client
    with _client_lock:
        if _client is None:
            pool = redis.BlockingConnectionPool.from_url(
                settings.REDIS_URL, max_connections=4, timeout=1.0, socket_timeout=1.0,
                socket_connect_timeout=1.0, decode_responses=True,
            )  # fmt: skip
            _client = redis.Redis(connection_pool=pool)
        return _client


def heartbeat(hostname: str, queues: list[str], now: float | None = None) -> None:
    pipe = client().pipeline(transaction=False)
    pipe.zadd(BEATS_KEY, {hostname: time.time() if now is None else now})
    pipe.hset(QUEUES_KEY, hostname, json.dumps(sorted(queues)))
    pipe.execute()


def heartbeat_remove(hostname: str) -> None:
    pipe = client().pipeline(transaction=False)
    pipe.zrem(BEATS_KEY, hostname)
    pipe.hdel(QUEUES_KEY, hostname)
    pipe.execute()


def workers_alive(now: float | None = None) -> dict[str, list[str]]:
    """Hostname -> queues of every worker whose heartbeat is fresh (one pipelined round trip)."""
    now = time.time() if now is None else now
    pipe = client().pipeline(transaction=False)
    pipe.zrangebyscore(BEATS_KEY, now - ALIVE_SECONDS, "+inf")
    pipe.hgetall(QUEUES_KEY)
    names, queues = pipe.execute()
    return {name: json.loads(queues.get(name) or "[]") for name in names}


class HeartbeatThread(threading.Thread):
    """Refreshes one worker's heartbeat until stopped (started from the `worker_ready` signal)."""

    def __init__(self, hostname: str, queues: list[str]) -> None:
        super().__init__(name="stratbox-heartbeat", daemon=True)
        self.hostname = hostname
        self.queues = queues
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                heartbeat(self.hostname, self.queues)
            except redis.RedisError:
                pass  # Redis down: the health check reports Redis itself; try again next beat
            self.stopped.wait(HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self.stopped.set()
        try:
            heartbeat_remove(self.hostname)
        except redis.RedisError:
            pass


_thread: HeartbeatThread | None = None


def on_worker_ready(sender: Any = None, **_: object) -> None:
    """`sender` is the worker's consumer: its host name and the queues it consumes."""
    global _thread
    hostname = str(getattr(sender, "hostname", None) or "worker")
    queues: list[str] = []
    task_consumer = getattr(sender, "task_consumer", None)
    if task_consumer is not None:
        queues = [q.name for q in task_consumer.queues]
    app = getattr(sender, "app", None)
    if not queues and app is not None:
        queues = list(app.amqp.queues.consume_from.keys())
    _thread = HeartbeatThread(hostname, queues)
    _thread.start()


def lower_cpu_priority(nice: int, idle: bool) -> str:
    """Lower this process's CPU priority, for every thread it has and every process it forks later.

    `idle`: the SCHED_IDLE policy, CFS weight 3 against 1024 for a nice-0 task (nice 19 is 15),
    run only with what ordinary tasks leave. Refused (no such policy, a seccomp profile, a kernel
    without it), the nice value alone is the fallback. The nice value is set in both cases: an
    unprivileged process can leave SCHED_IDLE again only for a nice value its RLIMIT_NICE allows,
    so with nice 19 neither the pool nor a sandbox host can climb back. Lowering is always allowed;
    raising back would need privileges. Returns what was applied, for the log."""
    wanted = min(max(int(nice), 0), 19)
    # Linux applies nice and scheduling policy per thread; threads started earlier keep their own.
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    for tid in tids:
        try:
            if wanted > os.getpriority(os.PRIO_PROCESS, tid):
                os.setpriority(os.PRIO_PROCESS, tid, wanted)
        except OSError:
            continue  # the thread ended meanwhile
    applied = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    sched_idle = getattr(os, "SCHED_IDLE", None)
    if not idle or sched_idle is None:
        return applied
    try:
        for tid in tids:
            try:
                os.sched_setscheduler(tid, sched_idle, os.sched_param(0))
            except ProcessLookupError:
                continue
    except OSError as exc:
        logger.warning("SCHED_IDLE refused (%s): long work runs at %s only", exc, applied)
        return applied
    return f"SCHED_IDLE, {applied}"


def on_worker_setup(worker: Any) -> None:
    """A worker that consumes only long-work queues (backtests) lowers its CPU priority before its
    pool starts: the pool processes and the sandbox hosts they spawn inherit it. On a shared core
    the scheduler then runs a tick (and the dispatcher, web, PostgreSQL, Redis) as soon as it is
    ready, and a backtest with the time left over; alone, a backtest still gets the whole core."""
    from stratbox.celery import LONG_QUEUE_SUFFIX  # the Celery app imports this module

    app = getattr(worker, "app", None)
    queues = list(app.amqp.queues.consume_from.keys()) if app is not None else []
    if not queues or not all(str(q).endswith(LONG_QUEUE_SUFFIX) for q in queues):
        return
    applied = lower_cpu_priority(settings.STRATBOX_LONG_WORKER_NICE, settings.STRATBOX_LONG_WORKER_IDLE)
    logger.info("long-work worker: CPU priority lowered to %s", applied)


def on_worker_shutdown(**_: object) -> None:
    if _thread is not None:
        _thread.stop()
