"""Periodic PostgreSQL snapshots of the Redis runtime, and the roll-up of run counters.

Ticks write only to Redis (fast, shared by every worker). Every few seconds the dirty instances'
runtime is copied into `InstanceRuntime`, and counter deltas are moved into `InstanceStats` with
`F()` increments — so PostgreSQL sees O(instances) writes per flush, not one per tick.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, connection, transaction

from stratbox.engine import runtime
from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.events import publish
from stratbox.engine.lua import lua_source
from stratbox.engine.models import InstanceRuntime, InstanceStats
from stratbox.engine.storable import clean_text, unstorable_json_text
from stratbox.instances.models import StrategyInstance

logger = logging.getLogger(__name__)

STAT_FIELDS = ("runs", "ok", "failed", "skipped", "coalesced", "orders")
# Consecutive flushes an instance's runtime could not be stored before it is paused (BAD_STATE).
BAD_STATE_PAUSE_AFTER = 3
BAD_STATE_KEY = runtime.PREFIX + "badstate"  # hash: instance id -> consecutive unstorable flushes

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
    rows: list[tuple[Any, ...]] = []
    bad: dict[str, tuple[str, str]] = {}
    for iid, values in zip(instance_ids, pipe.execute(), strict=True):
        raw = dict(zip(_FLUSH_FIELDS, values, strict=True))
        if raw["loaded"] != "1":
            continue
        # Validated before the write: one tenant's unstorable state must not fail the batch.
        problem = next(
            (
                (f"{field} {where}", what)
                for field in ("state", "config", "last_error")
                for where, what in [unstorable_json_text(raw[field]) or ("", "")]
                if what
            ),
            None,
        )
        if problem is not None:
            bad[iid] = problem
            continue
        rows.append(
            (
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
        )
    written = _write_rows(_flush_sql(), rows, bad) if rows else 0
    _bad_state_report(bad, good=[row[0] for row in rows if row[0] not in bad])
    return written


def _flush_sql() -> str:
    return _FLUSH_SQL.format(table=InstanceRuntime._meta.db_table, instances=StrategyInstance._meta.db_table)


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def _write_rows(sql: str, rows: list[tuple[Any, ...]], bad: dict[str, tuple[str, str]]) -> int:
    """One statement for the batch; if PostgreSQL still refuses it, row by row, so that only the
    offending instances fail (each added to `bad` with the database's reason)."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, _columns(rows))
            return int(cursor.rowcount)
    except DatabaseError:
        logger.warning("a batch write failed; retrying its %d rows one by one", len(rows), exc_info=True)
    written = 0
    for row in rows:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql, _columns([row]))
                written += int(cursor.rowcount)
        except DatabaseError as exc:
            bad[str(row[0])] = (
                "row",
                f"was refused by the database: {clean_text(str(exc).splitlines()[0])[:200]}",
            )
    return written


def _bad_state_report(bad: dict[str, tuple[str, str]], good: list[str]) -> None:
    """Show each offending instance a BAD_STATE error naming the path; pause it when it persists."""
    r = runtime.r()
    if good and r.exists(BAD_STATE_KEY):
        r.hdel(BAD_STATE_KEY, *good)
    for iid, (where, what) in bad.items():
        message = f"The runtime {where} {what}: it cannot be stored, so it is not snapshotted."
        error = {"code": "BAD_STATE", "message": message, "path": where, "line": None, "traceback": None}
        pipe = r.pipeline()
        pipe.hset(runtime.rt_key(iid), "last_error", runtime.dumps(error))
        pipe.hincrby(BAD_STATE_KEY, iid, 1)
        count = int(pipe.execute()[-1])
        logger.warning("instance %s: %s", iid, message)
        if count >= BAD_STATE_PAUSE_AFTER:
            _bad_state_pause(iid, message)


def _bad_state_pause(iid: str, message: str) -> None:
    instance = StrategyInstance.objects.filter(pk=iid).first()
    if instance is None:
        return
    if pause_runtime(instance, PauseReason.BAD_STATE):
        publish(
            tenant_id=instance.tenant_id,
            instance_id=iid,
            kind="status",
            data={
                "paused": True,
                "pause_reason": PauseReason.BAD_STATE,
                "error": {"code": "BAD_STATE", "message": message},
            },
        )


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
        rows: list[tuple[Any, ...]] = []
        for key, flat in zip(chunk, pipe.execute(), strict=True):
            row = _stats_row(key, flat)
            if row is not None:
                rows.append(row)
        if rows:
            bad: dict[str, tuple[str, str]] = {}
            updated += _write_rows(_ROLLUP_SQL, rows, bad)
            for iid, (_where, what) in bad.items():
                logger.warning("stats of instance %s not rolled up: %s", iid, what)
    return updated


def _stats_row(key: str, flat: list[str]) -> tuple[Any, ...] | None:
    """A roll-up row, or None when empty or malformed (a malformed hash is dropped, logged, and
    never reaches the statement the other instances share)."""
    try:
        values = dict(zip(flat[::2], flat[1::2], strict=True))
        iid = str(uuid.UUID(key.rsplit(":", 1)[1]))
        counts = [int(values.get(name) or 0) for name in STAT_FIELDS]
        if any(not 0 <= c < 2**62 for c in counts):
            raise ValueError("counter out of range")
        last = _dt(float(values["last_run_at"])) if values.get("last_run_at") else None
    except (ValueError, TypeError, OverflowError) as exc:
        logger.warning("malformed stats hash %s dropped: %s", key, exc)
        return None
    if not any(counts) and last is None:
        return None
    return (iid, *counts, last)


def stats_live(iid: str) -> dict[str, int]:
    """Counter deltas not yet rolled up (added to the stored counters by the runtime selector)."""
    raw = runtime.r().hgetall(runtime.stats_key(iid))
    return {name: int(raw.get(name) or 0) for name in STAT_FIELDS}
