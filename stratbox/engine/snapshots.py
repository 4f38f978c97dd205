"""Periodic PostgreSQL snapshots of the Redis runtime, and the roll-up of run counters.

Ticks write only to Redis (fast, shared by every worker). Every few seconds the dirty instances'
runtime is copied into `InstanceRuntime`, and counter deltas are moved into `InstanceStats` with
`F()` increments — so PostgreSQL sees O(instances) writes per flush, not one per tick.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from stratbox.engine import runtime
from stratbox.engine.lua import lua_source
from stratbox.engine.models import InstanceRuntime, InstanceStats
from stratbox.instances.models import StrategyInstance

STAT_FIELDS = ("runs", "ok", "failed", "skipped", "coalesced", "orders")

_TAKE_LUA = lua_source("counters_take")  # contract at the top of lua/counters_take.lua


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts else None


# The runtime fields copied, in the order of `_FLUSH_SQL`'s arrays (JSON ones go as their text).
_FLUSH_FIELDS = (
    "loaded",
    "fingerprint",
    "config",
    "state",
    "state_rev",
    "tick_seq",
    "paused",
    "pause_reason",
    "last_tick_at",
    "last_error",
    "consecutive_failures",
)

# One statement per flush, whatever the number of instances. The JSON stays the text Redis holds
# (no decode and re-encode in Python), and the join skips instances deleted since they ticked.
_FLUSH_SQL = """
INSERT INTO {table} (instance_id, fingerprint, config, state, state_rev, tick_seq, paused,
                     pause_reason, last_tick_at, last_error, consecutive_failures, updated_at)
SELECT v.instance_id, v.fingerprint, COALESCE(v.config::jsonb, '{{}}'::jsonb), v.state::jsonb,
       v.state_rev, v.tick_seq, v.paused, v.pause_reason, to_timestamp(v.last_tick_at),
       v.last_error::jsonb, v.consecutive_failures, now()
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[],
            %s::boolean[], %s::text[], %s::float8[], %s::text[], %s::integer[])
     AS v(instance_id, fingerprint, config, state, state_rev, tick_seq, paused, pause_reason,
          last_tick_at, last_error, consecutive_failures)
JOIN {instances} AS i ON i.id = v.instance_id
ON CONFLICT (instance_id) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint, config = EXCLUDED.config, state = EXCLUDED.state,
    state_rev = EXCLUDED.state_rev, tick_seq = EXCLUDED.tick_seq, paused = EXCLUDED.paused,
    pause_reason = EXCLUDED.pause_reason, last_tick_at = EXCLUDED.last_tick_at,
    last_error = EXCLUDED.last_error, consecutive_failures = EXCLUDED.consecutive_failures,
    updated_at = EXCLUDED.updated_at
"""


def snapshot_flush(instance_ids: list[str] | None = None, batch: int = 1000) -> int:
    """Copy the runtime of the given (or all dirty) instances into PostgreSQL; returns rows written.

    One pipelined read of the raw hash fields and one INSERT ... ON CONFLICT for the whole batch:
    at 1,000 instances the ORM's bulk_create spent ~10 % of a tick worker's CPU here."""
    r = runtime.r()
    if instance_ids is None:
        instance_ids = list(r.spop(runtime.DIRTY_KEY, batch) or [])
    else:
        r.srem(runtime.DIRTY_KEY, *instance_ids) if instance_ids else None
    if not instance_ids:
        return 0
    pipe = r.pipeline(transaction=False)
    for iid in instance_ids:
        pipe.hmget(runtime.rt_key(iid), _FLUSH_FIELDS)
    columns: list[list[Any]] = [[] for _ in range(len(_FLUSH_FIELDS))]
    for iid, values in zip(instance_ids, pipe.execute(), strict=True):
        raw = dict(zip(_FLUSH_FIELDS, values, strict=True))
        if raw["loaded"] != "1":
            continue
        row = (
            iid,
            raw["fingerprint"] or "",
            raw["config"] or None,
            raw["state"] or None,
            int(raw["state_rev"] or 0),
            int(raw["tick_seq"] or 0),
            raw["paused"] == "1",
            raw["pause_reason"] or "",
            float(raw["last_tick_at"]) if raw["last_tick_at"] else None,
            raw["last_error"] or None,
            int(raw["consecutive_failures"] or 0),
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if not columns[0]:
        return 0
    sql = _FLUSH_SQL.format(
        table=InstanceRuntime._meta.db_table, instances=StrategyInstance._meta.db_table
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)
        return int(cursor.rowcount)


def flush_all(batch: int = 1000, pause: float = 0.0) -> int:
    """Flush every dirty instance's runtime and roll up the counters (the dispatcher's periodic step).

    `pause`: seconds to sleep between two batches, so a large flush spreads its load on PostgreSQL
    (and its CPU) over time instead of holding the machine's cores at once."""
    written = 0
    r = runtime.r()
    for _ in range(50):  # bounded: instances ticking while we flush are simply flushed next time
        if not r.scard(runtime.DIRTY_KEY):
            break
        if written and pause:
            time.sleep(pause)
        # 0 when a batch held only unloaded instances: go on all the same
        written += snapshot_flush(batch=batch)
    stats_rollup(batch=batch, pause=pause)
    return written


# One statement for all the instances of a roll-up, whatever their number: a row is created on an
# instance's first roll-up and incremented afterwards; deleted instances are skipped (the join), and
# rows are written in id order, so concurrent roll-ups never deadlock.
_ROLLUP_SQL = """
INSERT INTO {table} AS s (instance_id, {fields}, last_run_at, updated_at)
SELECT v.instance_id, {v_fields}, v.last_run_at, now()
FROM unnest(%s::uuid[], {arrays}, %s::timestamptz[]) AS v(instance_id, {fields}, last_run_at)
JOIN {instances} AS i ON i.id = v.instance_id
ORDER BY v.instance_id
ON CONFLICT (instance_id) DO UPDATE SET {sets},
    last_run_at = CASE WHEN EXCLUDED.last_run_at IS NULL THEN s.last_run_at
                       ELSE GREATEST(s.last_run_at, EXCLUDED.last_run_at) END,
    updated_at = now()
""".format(
    table=InstanceStats._meta.db_table,
    instances=StrategyInstance._meta.db_table,
    fields=", ".join(STAT_FIELDS),
    v_fields=", ".join(f"v.{name}" for name in STAT_FIELDS),
    arrays=", ".join(["%s::bigint[]"] * len(STAT_FIELDS)),
    sets=", ".join(f"{name} = s.{name} + EXCLUDED.{name}" for name in STAT_FIELDS),
)


def stats_rollup(limit: int = 5000, batch: int = 1000, pause: float = 0.0) -> int:
    """Move Redis counter deltas into `InstanceStats`; returns the number of instances updated.

    `batch` instances per statement, `pause` seconds between two statements (see `flush_all`)."""
    r = runtime.r()
    keys = []
    for key in r.scan_iter(match=runtime.PREFIX + "stats:*", count=1000):
        keys.append(key)
        if len(keys) >= limit:
            break
    updated = 0
    take = r.register_script(_TAKE_LUA)
    for start in range(0, len(keys), batch):
        if start and pause:
            time.sleep(pause)
        chunk = keys[start : start + batch]
        pipe = r.pipeline(transaction=False)
        for key in chunk:
            take(keys=[key], client=pipe)
        columns: list[list[Any]] = [[] for _ in range(len(STAT_FIELDS) + 2)]
        for key, flat in zip(chunk, pipe.execute(), strict=True):
            values = dict(zip(flat[::2], flat[1::2], strict=True))
            counts = [int(values.get(name) or 0) for name in STAT_FIELDS]
            last = _dt(float(values["last_run_at"])) if values.get("last_run_at") else None
            if any(counts) or last is not None:
                for column, value in zip(columns, (key.rsplit(":", 1)[1], *counts, last), strict=True):
                    column.append(value)
        if columns[0]:
            with connection.cursor() as cursor:
                cursor.execute(_ROLLUP_SQL, columns)
                updated += int(cursor.rowcount)
    return updated


def stats_live(iid: str) -> dict[str, int]:
    """Counter deltas not yet rolled up (added to the stored counters by the runtime selector)."""
    raw = runtime.r().hgetall(runtime.stats_key(iid))
    return {name: int(raw.get(name) or 0) for name in STAT_FIELDS}
