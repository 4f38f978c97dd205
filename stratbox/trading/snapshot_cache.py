"""The trusted snapshots of a batch of ticks, from a per-instance cache kept exact by generations.

Most ticks change nothing in their instance's ledger, yet each needs its positions, the 20 most
recent orders, realized P&L (total and today's), resting buy notional and balance. Recomputing
them for every tick cost more than everything else a quiet tick does. So the mark-independent part
of each instance's snapshot is cached in Redis and recomputed only after its ledger changed:

- every write to an instance's orders, fills or positions calls `ledger_changed(instance_id)`,
  which increments the instance's generation at once and again after the transaction commits;
- a cache entry records the generation it was computed under (read *before* the database) and the
  UTC day: it is used only while both still match, so a write that commits while an entry is being
  computed makes that entry stale at once, never lost;
- what depends on the moment is never cached: marks (unrealized P&L) come from the batch's quotes
  and balances from one query per batch.

`instance_snapshots_cached` equals `instance_snapshots_many` (the reference, tested equal).
Read-only, no locks: the risk gate re-reads everything it enforces under its row locks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_is_valid, quotes_get_many, redis_client
from stratbox.trading.models import Account, Fill, Order, Position
from stratbox.trading.selectors import day_bounds

ZERO = Decimal("0")
Q8 = Decimal("0.00000001")
GEN_KEY = "sbx:trade:gen:{}"
SNAP_KEY = "sbx:trade:snap:{}:{}"
SNAP_TTL = 600  # seconds: an idle instance's entry goes; its generation stays (a day)
GEN_TTL = 86400
RECENT_ORDERS = 20


def ledger_changed(instance_ids: Iterable[Any]) -> None:
    """Invalidate these instances' cached snapshots now and again after the transaction commits.

    Now: this transaction (and a test's, which never commits) reads its own writes. After the
    commit: an entry computed in between, from rows the commit had not published yet, carries the
    generation of "now" and is made stale by the second bump. A rollback costs one recompute."""
    ids = sorted({str(i) for i in instance_ids})
    if ids:
        _bump(ids)
        if connection.in_atomic_block:
            transaction.on_commit(lambda: _bump(ids))


def _bump(ids: list[str]) -> None:
    pipe = redis_client().pipeline(transaction=False)
    for iid in ids:
        pipe.incr(GEN_KEY.format(iid))
        pipe.expire(GEN_KEY.format(iid), GEN_TTL)
    pipe.execute()


def _mark(quote: dict[str, Any] | None) -> Decimal | None:
    return Decimal(str(quote["price"])) if quote_is_valid(quote) else None


def _ts(value: Any) -> float | None:
    return value.timestamp() if value else None


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None


_POSITIONS_SQL = (
    "SELECT instance_id, is_shadow, id, market_id, qty, avg_price, cost_basis, realized_pnl, opened_at "  # noqa: S608
    f"FROM {Position._meta.db_table} WHERE instance_id = ANY(%s) AND closed_at IS NULL "
    "ORDER BY opened_at DESC"
)
_REALIZED_SQL = (
    "SELECT instance_id, is_shadow, SUM(realized_pnl), "  # noqa: S608
    "SUM(realized_pnl) FILTER (WHERE ts >= %s AND ts < %s) "
    f"FROM {Fill._meta.db_table} WHERE instance_id = ANY(%s) GROUP BY 1, 2"
)
_PENDING_SQL = (
    "SELECT instance_id, SUM((qty - filled_qty) * limit_price) "  # noqa: S608
    f"FROM {Order._meta.db_table} WHERE instance_id = ANY(%s) AND status IN ('accepted', 'partially_filled') "
    "AND is_shadow = false AND side = 'buy' GROUP BY 1"
)
_RECENT_ORDERS_SQL = (
    "SELECT o.instance_id, o.id, o.client_order_id, o.side, o.type, o.qty, o.limit_price, o.status, "  # noqa: S608
    "o.filled_at, o.fill_price, o.fee, o.deny_code, o.tag, o.created_at, o.stop_price, o.filled_qty "
    "FROM unnest(%s::uuid[], %s::boolean[]) AS i(iid, shadow) CROSS JOIN LATERAL ("
    f"SELECT * FROM {Order._meta.db_table} t WHERE t.instance_id = i.iid "
    "AND t.is_shadow = i.shadow ORDER BY t.created_at DESC, t.id DESC LIMIT %s) o "
    "ORDER BY o.instance_id, o.created_at DESC, o.id DESC"
)


def _query_all(statements: list[tuple[str, list[Any]]]) -> list[list[tuple[Any, ...]]]:
    """The rows of independent read statements, sent together: one round trip to PostgreSQL
    (psycopg's pipeline mode) instead of one each."""
    connection.ensure_connection()
    cursors = [connection.cursor() for _ in statements]
    try:
        with connection.connection.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def _raw_many(instances: list[StrategyInstance]) -> dict[str, dict[str, Any]]:
    """The mark- and balance-independent part of each instance's snapshot: four statements, one
    round trip."""
    ids = [i.pk for i in instances]
    shadow_of = {str(i.pk): i.mode != Mode.ACTIVE for i in instances}
    raw: dict[str, dict[str, Any]] = {
        str(i.pk): {"positions": [], "orders": [], "realized": "0", "today": "0", "pending": "0"}
        for i in instances
    }
    start, end = day_bounds(timezone.now().date())
    active = [i.pk for i in instances if not shadow_of[str(i.pk)]]
    statements = [
        (_POSITIONS_SQL, [ids]),
        (_REALIZED_SQL, [start, end, ids]),
        (_RECENT_ORDERS_SQL, [ids, [shadow_of[str(pk)] for pk in ids], RECENT_ORDERS]),
    ]
    if active:
        statements.append((_PENDING_SQL, [active]))
    results = _query_all(statements)
    positions, realized, recent = results[:3]
    pending = results[3] if active else []
    for iid, shadow, pid, market_id, qty, avg, cost, realized_pnl, opened in positions:
        if shadow == shadow_of[str(iid)]:
            raw[str(iid)]["positions"].append(
                [str(pid), market_id, str(qty), str(avg), str(cost), str(realized_pnl), _ts(opened)]
            )
    for iid, shadow, total, today in realized:
        if shadow == shadow_of[str(iid)]:
            raw[str(iid)]["realized"] = str(total if total is not None else ZERO)
            raw[str(iid)]["today"] = str(today if today is not None else ZERO)
    for iid, total in pending:
        raw[str(iid)]["pending"] = str(total if total is not None else ZERO)
    for (
        iid,
        oid,
        coid,
        side,
        otype,
        qty,
        limit,
        status,
        filled_at,
        fill_price,
        fee,
        deny,
        tag,
        created,
        stop,
        filled_qty,
    ) in recent:
        # The same dict as selectors.order_as_dict.
        raw[str(iid)]["orders"].append(
            {
                "id": str(oid),
                "client_order_id": coid,
                "side": side,
                "type": otype,
                "qty": float(qty),
                "price": _f(limit),
                "stop_price": _f(stop),
                "status": status,
                "filled": filled_at is not None,
                "filled_qty": float(filled_qty),
                "fill_price": _f(fill_price),
                "fee": float(fee),
                "deny_code": deny or None,
                "tag": tag or None,
                "created_at": _ts(created),
                "filled_at": _ts(filled_at),
            }
        )
    return raw


def _finish(
    instance: StrategyInstance, raw: dict[str, Any], marks: dict[int, Decimal], balance: Any
) -> dict[str, Any]:
    """The snapshot at these marks and balance. As in `instance_snapshots_many`: P&L values every
    open position at its market's mark; the position dicts show unrealized P&L at the instance's
    own market's mark only."""
    own_mark = marks.get(instance.market_id)
    positions = []
    unrealized = ZERO
    cost_total = ZERO
    own = None
    for pid, market_id, qty, avg, cost, realized, opened in raw["positions"]:
        qty_d, cost_d = Decimal(qty), Decimal(cost)
        mark = marks.get(market_id)
        if mark is not None:
            unrealized += (qty_d * mark - cost_d).quantize(Q8)
        cost_total += abs(cost_d)
        shown = (
            (qty_d * own_mark - cost_d).quantize(Q8)
            if own_mark is not None and market_id == instance.market_id
            else ZERO
        )
        as_dict = {
            "id": pid,
            "market_id": market_id,
            "qty": float(qty_d),
            "avg_price": float(Decimal(avg)),
            "cost_basis": cost,
            "realized_pnl": realized,
            "unrealized_pnl": str(shown),
            "opened_at": opened,
        }
        positions.append(as_dict)
        if own is None and market_id == instance.market_id:
            own = as_dict
    shadow = instance.mode != Mode.ACTIVE
    deployed = cost_total if shadow else cost_total + Decimal(raw["pending"])
    return {
        "orders": [dict(o) for o in raw["orders"]],
        "position": dict(own) if own is not None else None,
        "positions": positions,
        "balance": str(balance if balance is not None else ZERO),
        "pnl": {
            "realized": raw["realized"],
            "unrealized": str(unrealized),
            "today": str(Decimal(raw["today"]) + unrealized),
        },
        "deployed_capital": str(deployed),
        "available_capital": str(max(ZERO, instance.total_capital - deployed)),
    }


def instance_snapshots_cached(
    *,
    instances: list[StrategyInstance],
    quotes: dict[int, dict[str, Any]],
    balances: dict[Any, Any] | None = None,
    use_cache: bool = True,
) -> dict[Any, dict[str, Any]]:
    """Each instance's trusted snapshot (what `selectors.instance_snapshot` returns, for the whole
    batch), from the cache where it is current (see the module doc); `use_cache=False` reads
    everything from the database (`instance_snapshots_many`).

    `balances` (account id -> balance), when the caller read them a moment ago, saves the query."""
    if not instances:
        return {}
    if not use_cache:
        raws = _raw_many(instances)
        return _finish_all(instances, raws, quotes, balances)
    r = redis_client()
    day = timezone.now().date().isoformat()
    keys: list[str] = []
    for inst in instances:
        keys += [GEN_KEY.format(inst.pk), SNAP_KEY.format(inst.pk, int(inst.mode != Mode.ACTIVE))]
    values = [v.decode() if v is not None else None for v in r.mget(keys)]
    raws = {}
    stale: list[StrategyInstance] = []
    gens: dict[str, str] = {}
    for n, inst in enumerate(instances):
        gen, entry = values[2 * n] or "0", values[2 * n + 1]
        gens[str(inst.pk)] = gen
        if entry:
            entry_gen, entry_day, text = entry.split("|", 2)
            if entry_gen == gen and entry_day == day:
                raws[str(inst.pk)] = json.loads(text)
                continue
        stale.append(inst)
    if stale:
        fresh = _raw_many(stale)
        pipe = r.pipeline(transaction=False)
        for inst in stale:
            iid = str(inst.pk)
            raws[iid] = fresh[iid]
            text = json.dumps(fresh[iid], separators=(",", ":"))
            pipe.set(
                SNAP_KEY.format(iid, int(inst.mode != Mode.ACTIVE)), f"{gens[iid]}|{day}|{text}", ex=SNAP_TTL
            )
        pipe.execute()
    return _finish_all(instances, raws, quotes, balances)


def _finish_all(
    instances: list[StrategyInstance],
    raws: dict[str, dict[str, Any]],
    quotes: dict[int, dict[str, Any]],
    balances: dict[Any, Any] | None,
) -> dict[Any, dict[str, Any]]:
    marks = {mid: m for mid, q in quotes.items() if (m := _mark(q)) is not None}
    other = {p[1] for raw in raws.values() for p in raw["positions"]} - set(marks)
    if other:
        marks |= {mid: Decimal(str(q["price"])) for mid, q in quotes_get_many(list(other)).items()}
    if balances is None or any(i.account_id not in balances for i in instances):
        balances = dict(
            Account.objects.filter(pk__in={i.account_id for i in instances}).values_list("pk", "balance")
        )
    return {
        inst.pk: _finish(inst, raws[str(inst.pk)], marks, balances.get(inst.account_id)) for inst in instances
    }


def instance_snapshots_many(
    *, instances: list[StrategyInstance], quotes: dict[int, dict[str, Any]]
) -> dict[Any, dict[str, Any]]:
    """`instance_snapshot` for a whole batch of instances in five statements, whatever the batch size.

    Each result (keyed by pk) equals `instance_snapshot(instance=, quote=quotes.get(
    instance.market_id))` at the same moment (tested): positions, realized P&L (total and today's),
    resting buy notional and the 20 most recent orders (a LATERAL join on the (instance,
    -created_at) index) are each read once for the batch, then the balances. The engine reads the
    same through `instance_snapshots_cached` (above) with its cache, which skips the first four
    for instances whose ledger did not change. Read-only, no locks: the risk gate re-reads everything
    it enforces under its row locks.
    """
    return instance_snapshots_cached(instances=instances, quotes=quotes, use_cache=False)
