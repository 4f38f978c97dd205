"""Periodic PostgreSQL snapshots of the Redis runtime, and the roll-up of run counters.

Ticks write only to Redis (fast, shared by every worker). Every few seconds the dirty instances'
runtime is copied into `InstanceRuntime`, and counter deltas are moved into `InstanceStats` with
`F()` increments — so PostgreSQL sees O(instances) writes per flush, not one per tick.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from stratbox.engine import runtime
from stratbox.engine.models import InstanceRuntime, InstanceStats
from stratbox.instances.models import StrategyInstance

STAT_FIELDS = ("runs", "ok", "failed", "skipped", "coalesced", "orders")

# Read and reset a counter hash atomically, so no increment between the read and the reset is lost.
_TAKE_LUA = """
local v = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return v
"""


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


def flush_all(batch: int = 1000) -> int:
    """Flush every dirty instance's runtime and roll up the counters (the dispatcher's periodic step)."""
    written = 0
    r = runtime.r()
    for _ in range(50):  # bounded: instances ticking while we flush are simply flushed next time
        if not r.scard(runtime.DIRTY_KEY):
            break
        written += snapshot_flush(batch=batch)  # 0 when a batch held only unloaded instances: go on all the same
    stats_rollup()
    return written


def stats_rollup(limit: int = 5000) -> int:
    """Move Redis counter deltas into `InstanceStats`; returns the number of instances updated."""
    r = runtime.r()
    keys = []
    for key in r.scan_iter(match=runtime.PREFIX + "stats:*", count=1000):
        keys.append(key)
        if len(keys) >= limit:
            break
    if not keys:
        return 0
    take = r.register_script(_TAKE_LUA)
    pipe = r.pipeline(transaction=False)
    for key in keys:
        take(keys=[key], client=pipe)
    deltas: dict[str, dict[str, Any]] = {}
    for key, flat in zip(keys, pipe.execute(), strict=True):
        values = dict(zip(flat[::2], flat[1::2], strict=True))
        if values:
            deltas[key.rsplit(":", 1)[1]] = values
    existing = set(
        str(pk) for pk in StrategyInstance.objects.filter(pk__in=list(deltas)).values_list("pk", flat=True)
    )
    rows = []
    for iid in sorted(existing):  # a stable order: concurrent roll-ups never deadlock
        values = deltas[iid]
        counts = [int(values.get(name) or 0) for name in STAT_FIELDS]
        last = _dt(float(values["last_run_at"])) if values.get("last_run_at") else None
        if any(counts) or last is not None:
            rows.append((iid, *counts, last))
    if not rows:
        return 0
    table = InstanceStats._meta.db_table
    sets = ", ".join(f"{name} = s.{name} + v.{name}" for name in STAT_FIELDS)
    placeholders = ", ".join(
        ["(%s::uuid, " + ", ".join(["%s::bigint"] * len(STAT_FIELDS)) + ", %s::timestamptz)"] * len(rows)
    )
    with transaction.atomic():
        InstanceStats.objects.bulk_create(
            [InstanceStats(instance_id=row[0]) for row in rows], ignore_conflicts=True
        )
        # One statement for every instance (not one UPDATE each): at 1,000 instances every 5 s the
        # per-row form cost the worker ~1 s of database round trips per flush.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS s SET {sets}, "  # noqa: S608 - identifiers are ours, values are parameters
                "last_run_at = CASE WHEN v.last_run_at IS NULL THEN s.last_run_at "
                "ELSE GREATEST(s.last_run_at, v.last_run_at) END, updated_at = now() "
                f"FROM (VALUES {placeholders}) AS v(instance_id, {', '.join(STAT_FIELDS)}, last_run_at) "
                "WHERE s.instance_id = v.instance_id",
                [value for row in rows for value in row],
            )
    return len(rows)


def stats_live(iid: str) -> dict[str, int]:
    """Counter deltas not yet rolled up (added to the stored counters by the runtime selector)."""
    raw = runtime.r().hgetall(runtime.stats_key(iid))
    return {name: int(raw.get(name) or 0) for name in STAT_FIELDS}
