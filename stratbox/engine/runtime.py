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


# Picks instances due up to `now + lookahead`, advances each to its next slot (its phase on the
# schedule's grid, `phase`) and marks the slot queued. If the newest slot a worker started for the
# instance (`started_slot`, set when a tick begins) is older than two periods plus `grace`, the
# cluster is behind: the new slot is coalesced and counted instead of queued, so a slow cluster
# never builds an unbounded backlog, however far ahead slots are queued. A queued slot older than
# `stale` is presumed lost (its worker died) and the instance is queued again.
_DISPATCH_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local stale = tonumber(ARGV[3])
local prefix = ARGV[4]
local lookahead = tonumber(ARGV[5])
local grace = tonumber(ARGV[6])
local grid = tonumber(ARGV[7])
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now + lookahead, 'WITHSCORES', 'LIMIT', 0, limit)
local out = {}
for i = 1, #items, 2 do
  local iid = items[i]
  local due = tonumber(items[i + 1])
  local rt = prefix .. 'rt:' .. iid
  if redis.call('HGET', rt, 'loaded') ~= '1' or redis.call('HGET', rt, 'paused') == '1' then
    redis.call('ZREM', KEYS[1], iid)
  else
    local freq = tonumber(redis.call('HGET', rt, 'freq') or '1') or 1
    if freq < 1 then freq = 1 end
    local k = 0
    if due < now then k = math.floor((now - due) / freq) end
    local slot = due + k * freq
    local nxt = slot + freq
    if grid > 0.001 then
      -- A phase off the grid (scheduled before the grid, or under another interval) moves down to
      -- it. The tolerance is far above a float's error at epoch seconds (~2.4e-7).
      local second = math.floor(nxt)
      local aligned = math.floor((nxt - second) / grid + 1e-4) * grid
      if (nxt - second) - aligned > 1e-4 then nxt = second + aligned end
    end
    redis.call('ZADD', KEYS[1], nxt, iid)
    redis.call('HSET', rt, 'next_due_at', tostring(nxt))
    local missed = k
    local qslot = tonumber(redis.call('HGET', rt, 'queued_slot') or '')
    local started = tonumber(redis.call('HGET', rt, 'started_slot') or '')
    -- Behind: slots are queued ahead (lookahead), but the newest one a worker started began more
    -- than two periods plus the grace ago (two: a slot coalesced earlier is never started, and
    -- must not make the next one look late). Lost: the newest queued slot is older than `stale`
    -- (its worker died with it, or a paused instance came back): queue again.
    local phase = due - math.floor(due)
    local behind = (started ~= nil and (now - started - phase) >= 2 * freq + grace) or
                   (started == nil and qslot ~= nil and (now - qslot) >= grace)
    if qslot and behind and (now - qslot) < stale then
      missed = missed + 1
    else
      redis.call('HSET', rt, 'queued_slot', tostring(slot))
      table.insert(out, iid)
      table.insert(out, tostring(slot))
    end
    if missed > 0 then
      redis.call('HINCRBY', rt, 'coalesced_ticks', missed)
      redis.call('HINCRBY', prefix .. 'stats:' .. iid, 'coalesced', missed)
    end
  end
end
return out
"""


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

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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


# Starts ticks in one round trip, per item: claim the slot (a replay is a no-op), clear its "queued"
# mark, take the instance lock and read the runtime hash. KEYS = (claim, lock, rt) per item; ARGV =
# claim value, claim TTL, lock TTL ms, then (token, slot) per item. A claim lives the claim TTL plus
# two periods: longer than a slot can still run (a later tick, or the lateness bound, refuses an
# older slot), so a day of 1-second ticks does not leave 86,400 keys per instance in Redis.
# Returns one {status, runtime} pair per item.
_BEGIN_MANY_LUA = """
local out = {}
local n = #KEYS / 3
for i = 1, n do
  local claim, lock, rt = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  local token, slot = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local freq = tonumber(redis.call('HGET', rt, 'freq') or '1') or 1
  local ttl = tonumber(ARGV[2]) + 2 * math.max(freq, 1)
  if redis.call('SET', claim, ARGV[1], 'NX', 'EX', ttl) == false then
    out[i] = {'duplicate'}
  else
    local queued = tonumber(redis.call('HGET', rt, 'queued_slot') or '')
    if queued and math.floor(queued) == tonumber(slot) then redis.call('HDEL', rt, 'queued_slot') end
    redis.call('HSET', rt, 'started_slot', slot)
    if redis.call('SET', lock, token, 'NX', 'PX', ARGV[3]) == false then
      out[i] = {'busy'}
    else
      out[i] = {'ok', redis.call('HGETALL', rt)}
    end
  end
end
return out
"""


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


_REFRESH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def lock_refresh(iid: str, token: str) -> bool:
    """Extend a held lock to a full TTL; False when it is no longer ours (it expired)."""
    ttl_ms = int(conf.get("ENGINE_LOCK_TTL") * 1000)
    return bool(_script("refresh", _REFRESH_LUA)(keys=[lock_key(iid)], args=[token, ttl_ms]))


def stats_incr(pipe: Any, iid: str, **counts: int) -> None:
    for name, value in counts.items():
        if value:
            pipe.hincrby(stats_key(iid), name, value)


# Ends one or more successful ticks atomically. Per tick: its state and fields, the in-flight
# record dropped, dirty for the PostgreSQL snapshot, the counters, a block of event seqs reserved
# and (if the token still holds it) its lock released. ARGV[1] is the key prefix, then per tick:
# iid, token, finished, events, orders, seq key, tick metric, k, k order metrics, n, n field pairs.
_TICK_END_LUA = """
local prefix = ARGV[1]
local out = {}
local i = 2
while i <= #ARGV do
  local iid, token, finished = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local events, orders, seq_key = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
  local metric, k = ARGV[i + 6], tonumber(ARGV[i + 7])
  local nf = tonumber(ARGV[i + 8 + k])
  local rt, stats = prefix .. 'rt:' .. iid, prefix .. 'stats:' .. iid
  redis.call('HSET', rt, unpack(ARGV, i + 9 + k, i + 8 + k + 2 * nf))
  redis.call('HDEL', rt, 'inflight')
  redis.call('SADD', KEYS[1], iid)
  redis.call('HINCRBY', stats, 'runs', 1)
  redis.call('HINCRBY', stats, 'ok', 1)
  if orders > 0 then redis.call('HINCRBY', stats, 'orders', orders) end
  redis.call('HSET', stats, 'last_run_at', finished)
  if metric ~= '' then redis.call('RPUSH', KEYS[2], metric) end
  if k > 0 then redis.call('RPUSH', KEYS[3], unpack(ARGV, i + 8, i + 7 + k)) end
  table.insert(out, redis.call('INCRBY', seq_key, events))
  local lock = prefix .. 'lock:' .. iid
  if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
  i = i + 9 + k + 2 * nf
end
return out
"""


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
    seqs = _script("tick_end", _TICK_END_LUA)(keys=[DIRTY_KEY, METRICS_TICK_KEY, METRICS_ORDER_KEY], args=args)
    return [int(seq) for seq in seqs]
