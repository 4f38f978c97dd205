"""Runtime state of loaded instances, in Redis — never in one process's memory.

Keys (prefix `sbx:eng:`):

- `rt:<iid>` hash — `loaded`, `tenant`, `fingerprint`, `config` (JSON), `mode`, `freq`, `paused`,
  `pause_reason`, `state` (JSON), `state_rev`, `last_tick_at`, `last_error` (JSON), `next_due_at`,
  `worker`, `consecutive_failures`, `coalesced_ticks`, `queued_slot`, `inflight` (JSON), `tick_seq`.
- `due` sorted set — loaded, unpaused instances scored by their next due slot (epoch seconds).
- `lock:<iid>` — the per-instance tick lock (token, TTL): ticks of one instance never overlap.
- `claim:<iid>:<slot>` — a tick slot is executed at most once; a replayed task is a no-op.
- `stats:<iid>` hash — counter deltas (runs/ok/failed/...) rolled up into PostgreSQL periodically.
- `dirty` set — instances whose runtime changed since the last PostgreSQL snapshot.
- quote-triggered instances: `qsubs:<market>` set, `qdue` and `qbusy` sorted sets, `qwake` list,
  and `trigger`, `market`, `qseq`, `qlast`, `qpending` in `rt:<iid>` (see "quote-triggered ticks").

Every worker on every machine sees the same keys, so any worker can continue any instance.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings

from stratbox.engine import conf
from stratbox.engine.lua import lua_source

PREFIX = "sbx:eng:"
DUE_KEY = PREFIX + "due"
DIRTY_KEY = PREFIX + "dirty"
METRICS_TICK_KEY = PREFIX + "metrics:tick"  # "due,started,finished" per tick (ENGINE_METRICS=1 only)
METRICS_ORDER_KEY = PREFIX + "metrics:order"  # order_place milliseconds (ENGINE_METRICS=1 only)
# "items,ok,prefetch s,begin s,total s,statuses" per run_ticks batch (ENGINE_METRICS=1 only)
METRICS_BATCH_KEY = PREFIX + "metrics:batch"

_local = threading.local()


def r() -> redis.Redis:
    """A process-wide Redis client (redis-py's pool notices forks and reconnects by itself)."""
    client = getattr(_local, "client", None)
    if client is None:
        client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, health_check_interval=30)
        _local.client = client
    return client


_worker_id: tuple[int, str] | None = None


def worker_id() -> str:
    """`host:pid` of this process (computed once per process; a forked child gets its own)."""
    global _worker_id
    pid = os.getpid()
    if _worker_id is None or _worker_id[0] != pid:
        _worker_id = (pid, f"{socket.gethostname()}:{pid}")
    return _worker_id[1]


def rt_key(iid: str) -> str:
    return f"{PREFIX}rt:{iid}"


def lock_key(iid: str) -> str:
    return f"{PREFIX}lock:{iid}"


def claim_key(iid: str, slot: int) -> str:
    return f"{PREFIX}claim:{iid}:{slot}"


def stats_key(iid: str) -> str:
    return f"{PREFIX}stats:{iid}"


def fingerprint(version_id: Any, config_revision: Any) -> str:
    """What a loaded runtime was loaded from: a version or config-revision change means a reload."""
    return f"{version_id}:{config_revision}"


def desired_applied(rt: dict[str, Any], version_id: Any, config_revision: Any, config: Any) -> bool:
    """The runtime holds the instance's current version, config revision and config (live fields
    included): nothing for the reconciler to do but cheap refreshes. `rt["config"]` is decoded."""
    return rt.get("fingerprint") == fingerprint(version_id, config_revision) and (rt.get("config") or {}) == (
        config or {}
    )


# --- reading ----------------------------------------------------------------------------------

JSON_FIELDS = ("state", "config", "last_error", "inflight")
INT_FIELDS = ("state_rev", "consecutive_failures", "coalesced_ticks", "freq", "tick_seq")
FLOAT_FIELDS = ("last_tick_at", "next_due_at", "queued_slot")


def decode(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(raw)
    for name in JSON_FIELDS:
        out[name] = json.loads(raw[name]) if raw.get(name) else None
    for name in INT_FIELDS:
        out[name] = int(raw.get(name) or 0)
    for name in FLOAT_FIELDS:
        out[name] = float(raw[name]) if raw.get(name) else None
    out["loaded"] = raw.get("loaded") == "1"
    out["paused"] = raw.get("paused") == "1"
    out["pause_reason"] = raw.get("pause_reason") or None
    return out


def rt_get(iid: str) -> dict[str, Any] | None:
    raw = r().hgetall(rt_key(iid))
    return decode(raw) if raw else None


def rt_get_many(iids: list[str]) -> dict[str, dict[str, Any]]:
    pipe = r().pipeline(transaction=False)
    for iid in iids:
        pipe.hgetall(rt_key(iid))
    return {iid: decode(raw) for iid, raw in zip(iids, pipe.execute(), strict=True) if raw}


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


# --- the schedule -------------------------------------------------------------------------------


def phase(iid: str) -> float:
    """The instance's fixed offset inside its second, from its id, on the schedule's grid.

    A tick's identity is its whole-second slot (`tick_seq`, part of every client_order_id); *when*
    it runs is that second plus this phase. Without it every 1-second instance falls due at the
    same instant and the last of 1,000 waits for the 999 before it; with it the load (and the
    dispatcher's batches) spread evenly over the second.

    Phases are multiples of `ENGINE_DISPATCH_INTERVAL` (the schedule's resolution), and the
    dispatcher steps on that same wall-clock grid: a tick is due exactly when a step takes it, and
    every tick of a batch is due at the same instant, so none of them waits for the step or for
    the batch's last member, and the whole batch runs in one host round trip per tenant.
    """
    raw = ((uuid.UUID(iid).int >> 64) % 1000) / 1000.0
    step = conf.get("ENGINE_DISPATCH_INTERVAL")
    if step <= 0.001:
        return raw
    return round(math.floor(raw / step) * step, 6)


def first_due(iid: str, freq: int, now: float) -> float:
    """The first due time: a whole second spread over the period by id, plus the instance's phase."""
    spread = uuid.UUID(iid).int % max(freq, 1)
    return int(now) + 1 + spread + phase(iid)


def schedule(iid: str, due: float) -> None:
    pipe = r().pipeline()
    pipe.zadd(DUE_KEY, {iid: due})
    pipe.hset(rt_key(iid), "next_due_at", due)
    pipe.execute()


def unschedule(iid: str) -> None:
    pipe = r().pipeline()
    pipe.zrem(DUE_KEY, iid)
    pipe.hdel(rt_key(iid), "next_due_at", "queued_slot")
    pipe.execute()


_DISPATCH_LUA = lua_source("dispatch")  # contract at the top of lua/dispatch.lua


def due_take(now: float, limit: int = 20000, lookahead: float = 0.0) -> list[tuple[str, float]]:
    """Claim the due (or, with `lookahead`, soon due) slots for enqueueing: `[(instance_id, due)]`.

    `due` is the slot's second plus the instance's phase; `int(due)` is the slot (tick_seq)."""
    script = _script("dispatch", _DISPATCH_LUA)
    flat = script(
        keys=[DUE_KEY],
        args=[
            repr(now),
            limit,
            conf.get("ENGINE_QUEUED_STALE_SECONDS"),
            PREFIX,
            repr(lookahead),
            conf.get("ENGINE_QUEUE_GRACE"),
            repr(float(conf.get("ENGINE_DISPATCH_INTERVAL"))),
        ],
    )
    return [(flat[i], float(flat[i + 1])) for i in range(0, len(flat), 2)]


# --- tick lock and claims ------------------------------------------------------------------------

_RELEASE_LUA = lua_source("lock_release")  # contract at the top of lua/lock_release.lua


def lock_acquire(iid: str) -> str | None:
    token = f"{worker_id()}:{uuid.uuid4().hex[:8]}"
    ttl_ms = int(conf.get("ENGINE_LOCK_TTL") * 1000)
    return token if r().set(lock_key(iid), token, nx=True, px=ttl_ms) else None


def _script(name: str, text: str) -> Any:
    """A registered Lua script, built once per thread's client (hashing it per call is waste)."""
    scripts = getattr(_local, "scripts", None)
    if scripts is None or getattr(_local, "scripts_client", None) is not r():
        scripts = _local.scripts = {}
        _local.scripts_client = r()
    script = scripts.get(name)
    if script is None:
        script = scripts[name] = r().register_script(text)
    return script


def lock_release(iid: str, token: str) -> None:
    _script("release", _RELEASE_LUA)(keys=[lock_key(iid)], args=[token])


def tick_begin(iid: str, slot: int) -> tuple[str, str | None, dict[str, Any] | None]:
    """(status, lock token, runtime): status is ok | duplicate (slot already claimed) | busy (locked)."""
    return tick_begin_many([(iid, slot)])[0]


_BEGIN_MANY_LUA = lua_source("tick_begin_many")  # contract at the top of lua/tick_begin_many.lua


def tick_begin_many(items: list[tuple[str, int]]) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """Begin a batch's ticks in one round trip (claims, locks and runtimes of every item)."""
    if not items:
        return []
    keys: list[str] = []
    args: list[Any] = [
        worker_id(),
        int(conf.get("ENGINE_CLAIM_TTL")),
        int(conf.get("ENGINE_LOCK_TTL") * 1000),
    ]
    tokens = []
    for iid, slot in items:
        keys += [claim_key(iid, slot), lock_key(iid), rt_key(iid)]
        token = f"{worker_id()}:{uuid.uuid4().hex[:8]}"
        tokens.append(token)
        args += [token, str(slot)]
    res = _script("begin_many", _BEGIN_MANY_LUA)(keys=keys, args=args)
    out: list[tuple[str, str | None, dict[str, Any] | None]] = []
    for token, row in zip(tokens, res, strict=True):
        if row[0] != "ok":
            out.append((row[0], None, None))
            continue
        flat = row[1]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        out.append(("ok", token, decode(raw) if raw else None))
    return out


_REFRESH_LUA = lua_source("lock_refresh")  # contract at the top of lua/lock_refresh.lua


def lock_refresh(iid: str, token: str) -> bool:
    """Extend a held lock to a full TTL; False when it is no longer ours (it expired)."""
    ttl_ms = int(conf.get("ENGINE_LOCK_TTL") * 1000)
    return bool(_script("refresh", _REFRESH_LUA)(keys=[lock_key(iid)], args=[token, ttl_ms]))


def stats_incr(pipe: Any, iid: str, **counts: int) -> None:
    for name, value in counts.items():
        if value:
            pipe.hincrby(stats_key(iid), name, value)


_TICK_END_LUA = lua_source("tick_end_many")  # contract at the top of lua/tick_end_many.lua


@dataclass
class TickEnd:
    """What `tick_end_many` persists for one successful tick."""

    iid: str
    token: str | None
    finished: float
    fields: dict[str, Any]
    events: int  # event seqs to reserve in `seq_key`
    orders: int
    seq_key: str
    # ENGINE_METRICS only: (due, started, snapshot s, sandbox s, orders s) and order milliseconds;
    # the "done" time is taken when the tick is persisted.
    metric: tuple[float, float, float, float, float] | None = None
    order_metrics: list[str] = field(default_factory=list)


def tick_end_many(ends: list[TickEnd]) -> list[int]:
    """Persist successful ticks in one atomic round trip (see `_TICK_END_LUA`); returns, per tick,
    the last reserved event seq (`events` seqs are reserved, ending there)."""
    if not ends:
        return []
    done = repr(time.time())
    args: list[Any] = [PREFIX]
    for end in ends:
        metric = ""
        if end.metric is not None:
            due, started, snap, user, orders = end.metric
            metric = f"{due},{started},{done},{snap},{user},{orders}"
        args += [end.iid, end.token or "", repr(end.finished), end.events, end.orders, end.seq_key, metric]
        args += [len(end.order_metrics), *end.order_metrics, len(end.fields)]
        for name, value in end.fields.items():
            args += [name, value]
    seqs = _script("tick_end", _TICK_END_LUA)(
        keys=[DIRTY_KEY, METRICS_TICK_KEY, METRICS_ORDER_KEY], args=args
    )
    return [int(seq) for seq in seqs]


# --- quote-triggered ticks ---------------------------------------------------------------------
#
# An instance with `trigger = quote` ticks on the quotes of its market instead of a period. It sits
# in the due set with an infinite score (so it counts as scheduled, leaves it when paused or unloaded
# exactly like a periodic instance, and the periodic Lua step never takes it) and in its market's
# subscriber set. Publishing a quote marks the market's subscribers due in one Lua call
# (`quote_mark`); the dispatcher takes them (`quote_take`) with its periodic step. While a tick is
# marked, queued or running (`qbusy`), further quotes only leave a `qpending` mark: when the batch
# ends (`quote_done`) exactly one more tick is marked, and it reads the newest quote. Ticks of one
# instance start at least `ENGINE_QUOTE_MIN_INTERVAL` apart.

QDUE_KEY = PREFIX + "qdue"  # sorted set: quote instance -> when its marked tick may start
QBUSY_KEY = PREFIX + "qbusy"  # sorted set: quote instance -> when its tick was marked or queued
QWAKE_KEY = PREFIX + "qwake"  # channel: a message wakes the dispatchers when a quote tick is due now
# A quote tick's seq is epoch milliseconds (unique and increasing per instance: `quote_take`); a
# periodic slot is epoch seconds. "Older than the last slot run" compares periodic slots only.
QUOTE_SEQ_MIN = 10**11


def qsubs_key(market_id: Any) -> str:
    return f"{PREFIX}qsubs:{market_id}"


def is_quote_seq(seq: int) -> bool:
    return seq >= QUOTE_SEQ_MIN


def last_slot(rt: dict[str, Any]) -> int:
    """The last periodic slot run (0 when the last tick was quote-triggered)."""
    seq = int(rt.get("tick_seq") or 0)
    return 0 if is_quote_seq(seq) else seq


def arm(pipe: Any, iid: str, *, freq: int, trigger: str, market_id: Any, now: float) -> None:
    """Schedule a loaded, unpaused instance on `pipe`: its next periodic slot, or (trigger quote)
    the due set's infinite score and its market's subscriber set."""
    if trigger == "quote":
        pipe.zadd(DUE_KEY, {iid: "inf"})
        pipe.hdel(rt_key(iid), "next_due_at")
        pipe.sadd(qsubs_key(market_id), iid)
    else:
        due = first_due(iid, freq, now)
        pipe.zadd(DUE_KEY, {iid: due})
        pipe.hset(rt_key(iid), "next_due_at", due)
        pipe.srem(qsubs_key(market_id), iid)


def arm_now(iid: str, *, freq: int, trigger: str, market_id: Any) -> None:
    pipe = r().pipeline()
    arm(pipe, iid, freq=freq, trigger=trigger, market_id=market_id, now=time.time())
    pipe.execute()


_QUOTE_MARK_LUA = lua_source("quote_mark")  # contract at the top of lua/quote_mark.lua
_QUOTE_TAKE_LUA = lua_source("quote_take")  # contract at the top of lua/quote_take.lua
_QUOTE_DONE_LUA = lua_source("quote_done")  # contract at the top of lua/quote_done.lua


def quote_mark(pipe: Any, quotes: dict[int, dict[str, Any]]) -> None:
    """Add to the quote writer's pipeline the one Lua call that marks the quote instances of these
    markets due (a `markets.quotes` listener: the quotes and the marks cost one round trip).

    EVAL, not EVALSHA: a pipeline running a registered script first asks Redis whether it exists
    (an extra round trip per call); Redis caches the compiled text by its hash all the same."""
    if not quotes:
        return
    keys = [DUE_KEY, QDUE_KEY, QBUSY_KEY, QWAKE_KEY]
    now = repr(time.time())
    gap = repr(float(conf.get("ENGINE_QUOTE_MIN_INTERVAL")))
    pipe.eval(_QUOTE_MARK_LUA, len(keys), *keys, PREFIX, now, gap, *quotes)


def quote_take(now: float) -> list[tuple[str, float, int]]:
    """Take the quote ticks due by `now`: `[(instance_id, due, seq)]` (see lua/quote_take.lua)."""
    flat = _script("quote_take", _QUOTE_TAKE_LUA)(
        keys=[DUE_KEY, QDUE_KEY, QBUSY_KEY],
        args=[PREFIX, repr(now), repr(float(conf.get("ENGINE_QUEUED_STALE_SECONDS"))), 20000],
    )
    return [(flat[i], float(flat[i + 1]), int(flat[i + 2])) for i in range(0, len(flat), 3)]


def quote_wait(timeout: float) -> bool:
    """Wait up to `timeout` seconds for a quote tick falling due now (the dispatcher's sleep); True
    when woken. The first call subscribes (and may return early).

    A channel, not a blocking pop: Redis ends a blocking command's timeout only on its own clock
    (10-25 ms late at `hz` 10), which made the dispatcher miss its grid points; the subscriber's
    wait is a plain socket wait. A wake-up missed (no dispatcher subscribed) costs at most one
    dispatcher step: every step takes the due quote ticks too."""
    pubsub = getattr(_local, "qwake", None)
    if pubsub is None or getattr(_local, "qwake_client", None) is not r():
        pubsub = _local.qwake = r().pubsub(ignore_subscribe_messages=True)
        _local.qwake_client = r()
        pubsub.subscribe(QWAKE_KEY)
    if timeout <= 0:
        return False
    return pubsub.get_message(timeout=timeout) is not None


def quote_done(iids: list[str]) -> int:
    """The quote ticks of a batch ended: each instance's next quote may mark it again, and one that
    saw a quote meanwhile is marked due now (once). Returns how many were marked again."""
    if not iids:
        return 0
    script = _script("quote_done", _QUOTE_DONE_LUA)
    return int(
        script(
            keys=[DUE_KEY, QDUE_KEY, QBUSY_KEY, QWAKE_KEY],
            args=[PREFIX, repr(time.time()), repr(float(conf.get("ENGINE_QUOTE_MIN_INTERVAL"))), *iids],
        )
    )
