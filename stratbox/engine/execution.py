"""Tick execution: one scheduled slot of one instance, run exactly once, in any worker.

    claim (instance, slot) ─ a replayed task is a no-op
    lock  (instance)       ─ ticks never overlap; a busy instance's tick is coalesced and counted
    recover in-flight      ─ a tick whose worker died is replayed first, with the same tick input
                             and tick_seq, from the last persisted state (orders are idempotent
                             on client_order_id, so nothing is lost or placed twice)
    read instance + quote → trusted snapshot → strategy in the tenant's sandbox host
    → each intent through `trading.services.order_place` (observe: shadow; active: risk gate + broker)
    → persist state (Redis) → record the run → publish events after commit

No database row lock is held while user code runs: `order_place` owns its short transaction.
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback as tb_module
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from stratbox.engine import conf, events, runtime, sandboxes
from stratbox.engine import replies as host_replies
from stratbox.engine.control import PauseReason, pause_runtime
from stratbox.engine.models import Run, RunStatus, RunTrigger
from stratbox.engine.storable import clean_json, clean_text
from stratbox.instances.models import Mode, SizingMethod, StrategyInstance
from stratbox.markets.models import Market
from stratbox.notifications.events import tick_notify
from stratbox.plugins.services import plugin_snapshot
from stratbox.rows import mark_saved, row_write
from stratbox.trading.models import Account
from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import Tenant
from tenants.services import audit_record

logger = logging.getLogger(__name__)


@dataclass
class TickOutcome:
    status: str  # ok | error | timeout | skipped | duplicate | coalesced | not_loaded | paused | off
    run_id: int | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    recovered: bool = False


def _instances_qs() -> Any:
    # The version's source is only needed when a host must (re)load the instance: fetched lazily then.
    return StrategyInstance.objects.select_related(
        "version__definition", "tenant", "market", "account"
    ).defer("version__source", "version__exit_source", "version__validation_report")


def _instance(iid: str) -> StrategyInstance | None:
    return _instances_qs().filter(pk=iid).first()


# Instance rows (with tenant, market, account, version) kept between batches of this process, keyed
# by id, each with its stamp: the `xmin` and `ctid` of the instance, tenant and market rows (the
# transaction that wrote the row version and where it lies: every UPDATE, through save() or not,
# makes a new version, in a new place and, from another transaction, with a new xmin, while a row
# lock leaves both alone), a hash of every column of the account row but its balance
# (which every fill moves and which is read here anyway; once per account, not per instance) and
# the definition's updated_at (versions are immutable). A batch reads the stamps of its instances in
# one statement and rebuilds only the rows whose stamp moved, so any change is seen by the very next
# batch; an unchanged row is never rebuilt. Building ~25 model graphs per batch was a tenth of a
# quiet tick's CPU, and rebuilding every row every 30 s still 4 % of a worker's; hashing every
# joined row as JSON (the stamps before `xmin`) made this the costliest statement of a batch.
ROW_CACHE_MAX = 50_000
_rows: dict[str, tuple[tuple[Any, ...], StrategyInstance]] = {}
_rows_pid: int | None = None

_STAMP_SQL = (
    f"WITH i AS (SELECT id, xmin::text || ctid::text AS x, tenant_id, account_id, market_id, version_id "  # noqa: S608 - table names only
    f"FROM {StrategyInstance._meta.db_table} WHERE id = ANY(%s)), "
    f"a AS (SELECT id, balance, md5((to_jsonb(acc) - 'balance')::text) AS h FROM {Account._meta.db_table} acc "
    "WHERE id IN (SELECT account_id FROM i)) "
    "SELECT i.id, i.x, t.xmin::text || t.ctid::text, m.xmin::text || m.ctid::text, a.h, d.updated_at, a.id, a.balance "
    f"FROM i JOIN {Tenant._meta.db_table} t ON t.id = i.tenant_id JOIN a ON a.id = i.account_id "
    f"JOIN {Market._meta.db_table} m ON m.id = i.market_id "
    f"JOIN {StrategyVersion._meta.db_table} v ON v.id = i.version_id "
    f"JOIN {StrategyDefinition._meta.db_table} d ON d.id = v.definition_id"
)


def instances_for_batch(
    instance_ids: list[str], balances: dict[Any, Any] | None = None
) -> dict[str, StrategyInstance]:
    """The batch's instance rows (cached, see above); `balances` receives their accounts' balances
    (read by the same statement: the trusted snapshots need them)."""
    global _rows_pid
    if _rows_pid != os.getpid():  # a forked worker child starts with its own cache
        _rows.clear()
        _rows_pid = os.getpid()
    with connection.cursor() as cursor:
        cursor.execute(_STAMP_SQL, [[uuid.UUID(i) for i in instance_ids]])
        stamps = {}
        for row in cursor.fetchall():
            stamps[str(row[0])] = tuple(row[1:6])
            if balances is not None:
                balances[row[6]] = row[7]
    out: dict[str, StrategyInstance] = {}
    missing = []
    for iid, stamp in stamps.items():
        cached = _rows.get(iid)
        if cached is not None and cached[0] == stamp:
            out[iid] = cached[1]
        else:
            missing.append(iid)
    if missing:
        if len(_rows) + len(missing) > ROW_CACHE_MAX:
            _rows.clear()
        for row in _instances_qs().filter(pk__in=missing):
            iid = str(row.pk)
            out[iid] = row
            # The stamp read before the row: if the row moved in between, the next batch sees a
            # newer stamp and reads it again.
            if iid in stamps:
                _rows[iid] = (stamps[iid], row)
    return out


@dataclass
class Prefetched:
    """Rows, quotes and trusted snapshots read once for a whole batch of ticks.

    One query for the row stamps and balances (rows are rebuilt only when they moved), one Redis
    round trip for the quotes, and the trusted snapshots of the whole batch from
    `trading.snapshot_cache` (one Redis round trip; one more to PostgreSQL, four statements
    pipelined, only for instances whose ledger changed).
    A tick that places orders changes its account's balance: later ticks of the batch on the same
    account that did not run in a host yet re-read just that balance (`balance_changed`), so no
    snapshot is staler than the batch (the risk gate re-reads the balance under its lock anyway).
    """

    instances: dict[str, StrategyInstance]
    quotes: dict[int, dict[str, Any]]
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_accounts: set[Any] = field(default_factory=set)
    balances: dict[Any, str] = field(default_factory=dict)
    # Instance ids somebody watches on the dashboard (None: unknown, publish every tick's events).
    audience: set[str] | None = None
    # Ticks whose user code already ran together with other due ticks (`_run_due_in_hosts`): their
    # snapshots and the hosts' answers (a result or the call's SandboxError).
    built: dict[str, dict[str, Any]] = field(default_factory=dict)
    host_results: dict[str, Any] = field(default_factory=dict)
    host_tried: set[str] = field(default_factory=set)
    # Quiet ticks (no order, no pause) that ran but are not persisted yet, and what follows their
    # persisting: `flush` ends them all in one round trip (see `defer`).
    pending: list[tuple[runtime.TickEnd, Callable[[int], None]]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)

    def trusted(self, instance: StrategyInstance) -> dict[str, Any] | None:
        snap = self.snapshots.pop(str(instance.pk), None)
        if snap is None:
            return None
        account = instance.account_id
        if account in self.stale_accounts:
            from stratbox.trading.models import Account

            self.balances[account] = str(
                Account.objects.filter(pk=account).values_list("balance", flat=True).first() or Decimal(0)
            )
            self.stale_accounts.discard(account)
        if account in self.balances:
            snap["balance"] = self.balances[account]
        return snap

    def balance_changed(self, instance: StrategyInstance) -> None:
        self.stale_accounts.add(instance.account_id)

    def defer(self, end: runtime.TickEnd, after: Callable[[int], None]) -> None:
        """Persist this quiet tick with the others of its batch at the next `flush`.

        The batch flushes before a tick places an order, before it waits for a later due time, before
        the next host round trip and at its end. So the ticks that a worker's death can lose are the
        ones in flight together (one host round trip), and only quiet ones: nothing outside their
        own state changed, and each instance simply continues from its last persisted revision.
        """
        self.pending.append((end, after))

    def flush(self) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        try:
            seqs = runtime.tick_end_many([end for end, _ in pending])
        except Exception:
            logger.exception("persisting %d ticks failed; they are lost", len(pending))
            for end, _ in pending:
                self.lost.add(end.iid)
                sandboxes.forget(end.iid)  # the host is ahead of the persisted state
                if end.token:
                    try:
                        runtime.lock_release(end.iid, end.token)
                    except Exception:  # the lock expires by itself
                        logger.warning("could not release the lock of %s", end.iid, exc_info=True)
            return
        for (end, after), seq in zip(pending, seqs, strict=True):
            try:
                after(seq)
            except Exception:  # the tick is persisted; what follows is best effort
                logger.exception("after persisting the tick of %s", end.iid)


def prefetch(instance_ids: list[str]) -> Prefetched:
    from stratbox.markets.quotes import quotes_get_many
    from stratbox.trading.snapshot_cache import instance_snapshots_cached

    balances: dict[Any, Any] = {}
    instances = instances_for_batch(instance_ids, balances)
    quotes = quotes_get_many({i.market_id for i in instances.values()})
    pre = Prefetched(instances=instances, quotes=quotes)
    quoted = [i for i in instances.values() if i.mode != Mode.OFF and quotes.get(i.market_id)]
    try:
        many = instance_snapshots_cached(instances=quoted, quotes=quotes, balances=balances)
    except Exception:  # the per-tick path still works: fall back to it rather than lose the batch
        logger.exception("batched snapshot failed; falling back to one snapshot per tick")
        many = {}
    pre.snapshots = {str(pk): snap for pk, snap in many.items()}
    try:
        pre.audience = events.audience([(pk, i.tenant_id) for pk, i in instances.items()])
    except Exception:  # unknown audience: publish everything, as without the check
        logger.warning("audience check failed", exc_info=True)
    return pre


def tick_run_batch(items: list[tuple[str, float]]) -> list[TickOutcome]:
    """Run several scheduled ticks; instance rows and quotes are read once for the batch.

    Afterwards the watched ones among those that ticked OK are rendered (on demand: one Redis round
    trip finds them; nobody watching costs nothing more).
    """
    from stratbox.engine.rendering import render_watched_after_ticks

    t0 = time.perf_counter()
    started_at = time.time()
    pre = prefetch([str(iid) for iid, _ in items])
    t_pre = time.perf_counter()
    # Claims, locks and runtimes of the whole batch in one round trip. Locks are taken for the
    # batch up front; a tick that starts late in a slow batch refreshes its lock first.
    begun_at = time.monotonic()
    try:
        begun: list[Any] = runtime.tick_begin_many([(str(iid), int(slot)) for iid, slot in items])
    except Exception:
        logger.exception("batched tick begin failed; beginning one by one")
        begun = [None] * len(items)
    t_begun = time.perf_counter()
    results: dict[int, TickOutcome] = {}
    todo = list(range(len(items)))  # what is left to run, by index into `items`
    while todo:
        iid, slot = items[todo[0]]
        # A batch is queued when due (or with an ETA at its last due time), so its members are all
        # due; one started early (ahead of that ETA) waits for each member's own due time, never
        # longer than its offset from the first.
        early = min(slot - time.time(), slot - items[0][1])
        if early > 0:
            pre.flush()
            time.sleep(min(early, 1.0))
        if str(iid) not in pre.host_tried:
            pre.flush()
            now = time.time()
            due = [
                (str(items[k][0]), items[k][1], begun[k])
                for k in todo
                if items[k][1] <= now and str(items[k][0]) not in pre.host_tried
            ]
            if len(due) > 1:
                try:
                    _run_due_in_hosts(pre, due)
                except Exception:  # the ticks run one by one instead
                    logger.exception("running due ticks together failed")
                # The quiet ticks first: they are persisted together at the next flush, before the
                # first tick that places an order (whose round trips would otherwise hold them up).
                todo.sort(key=lambda k: _run_order(pre.host_results.get(str(items[k][0]))))
        k = todo.pop(0)
        iid, slot = items[k]
        began = begun[k]
        try:
            if began is not None and began[1] is not None:
                if time.monotonic() - begun_at > conf.get("ENGINE_LOCK_TTL") / 3 and not runtime.lock_refresh(
                    str(iid), began[1]
                ):
                    _count_coalesced(str(iid))
                    results[k] = TickOutcome(status="coalesced")  # our lock lapsed: never overlap
                    continue
            results[k] = tick_run(iid, slot, prefetched=pre, begun=began)
        except Exception:  # one instance's engine failure must not cost the rest of the batch its tick
            logger.exception("tick of %s at %s failed", iid, slot)
            results[k] = TickOutcome(status="engine_error")
    outcomes = [results[k] for k in range(len(items))]
    pre.flush()
    if pre.lost:
        outcomes = [
            TickOutcome(status="engine_error") if str(iid) in pre.lost else out
            for (iid, _), out in zip(items, outcomes, strict=True)
        ]
    for iid in pre.host_results:  # ran in a host but the tick did not go on: that state is not persisted
        sandboxes.forget(iid)
    ticked = [str(iid) for (iid, _), out in zip(items, outcomes, strict=True) if out.status == "ok"]
    try:
        render_watched_after_ticks(pre.instances, ticked)
    except Exception:  # rendering is for the dashboard: never let it fail the ticks
        logger.exception("rendering watched instances failed")
    if conf.get("ENGINE_METRICS"):
        statuses = "/".join(sorted({o.status for o in outcomes}))
        runtime.r().rpush(
            runtime.METRICS_BATCH_KEY,
            f"{len(items)},{len(ticked)},{t_pre - t0},{t_begun - t_pre},{time.perf_counter() - t0},{statuses},"
            f"{os.getpid()},{started_at},{time.time()},{started_at - max(due for _, due in items)}",
        )
    return outcomes


def _run_order(result: Any) -> int:
    """Where a tick goes once the host answered for the due ticks of its batch: quiet ones first
    (persisted together at the next flush), then those that act (orders, signals or an error,
    each written at once), then the ticks the host did not run (not due yet, or not runnable)."""
    if result is None:
        return 2
    if isinstance(result, Exception):
        return 1
    return int(bool(result.get("intents") or result.get("exits") or result.get("entries")))


def _tick_from_quote(quote: dict[str, Any], market_code: str) -> dict[str, Any]:
    # A replayed bar's tick carries the bar's time, as a backtest's does; a live quote its own.
    tick = {
        "market": quote.get("market") or market_code,
        "ts": float(quote.get("bar_ts") or quote.get("ts") or time.time()),
        "price": float(quote["price"]),
        "bid": float(quote["bid"]),
        "ask": float(quote["ask"]),
        "volume": float(quote.get("volume") or 0.0),
    }
    for name in ("open", "high", "low", "close"):
        if name in quote:
            tick[name] = float(quote[name])
    return tick


def _quote_now(instance: StrategyInstance) -> dict[str, Any] | None:
    from stratbox.markets.quotes import quote_get

    return quote_get(instance.market_id)


def _snapshot(
    instance: StrategyInstance,
    quote: dict[str, Any],
    mode: str,
    prefix: str,
    trusted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot sent with a tick; `trusted` is the batch's prefetched trading part, if any."""
    if trusted is None:
        from stratbox.trading.services import instance_snapshot

        trusted = instance_snapshot(instance=instance, quote=quote)
    price = quote.get("price")
    # The SDK's Position view (signal style): id, market, side, unsigned qty, entry and current price.
    trusted["positions"] = [
        _sdk_position(p, instance.market.code, price) for p in trusted.get("positions") or []
    ]
    if trusted.get("position"):
        trusted["position"] = _sdk_position(trusted["position"], instance.market.code, price)
    return {
        **trusted,
        "mode": mode,
        "now": float(quote.get("bar_ts") or time.time()),
        "quote": {k: quote.get(k) for k in ("market", "price", "bid", "ask", "ts")},
        "order_id_prefix": prefix,
        **plugin_snapshot(instance.pk, time.time()),  # read-only sidecar signals (stratbox.plugins)
    }


def _sdk_position(p: dict[str, Any], market_code: str, price: Any) -> dict[str, Any]:
    qty = float(p.get("qty") or 0)
    return {
        **p,
        "position_id": str(p.get("id")),
        "market": market_code,
        "side": "short" if qty < 0 else "long",
        "qty": abs(qty),
        "signed_qty": qty,
        "entry_price": p.get("avg_price"),
        "current_price": price,
    }


# --- signal style: the cycle and sizing (seed 002) -----------------------------------------------


def _lot_floor(qty: Decimal, lot: Decimal) -> Decimal:
    if lot <= 0:
        return qty
    return (qty / lot).to_integral_value(rounding=ROUND_DOWN) * lot


def entry_notional(instance: StrategyInstance, confidence: float, config: dict[str, Any]) -> Decimal:
    """Capital for one entry by the instance's sizing method, never above capital_per_trade.

    fixed: capital_per_trade. kelly: the Kelly fraction of an even-odds bet won with probability
    `confidence`, f = 2p - 1 (0 when p <= 0.5), of total capital. percent_capital: the config's
    `percent_capital` (default 10) percent of total capital.
    """
    per_trade = Decimal(instance.capital_per_trade)
    total = Decimal(instance.total_capital)
    if instance.sizing_method == SizingMethod.KELLY:
        p = min(max(float(confidence), 0.0), 1.0) if math.isfinite(float(confidence)) else 0.0
        notional = total * max(Decimal(0), 2 * Decimal(str(p)) - 1)
    elif instance.sizing_method == SizingMethod.PERCENT_CAPITAL:
        raw = config.get("percent_capital", 10)
        pct = (
            Decimal(str(raw)) if type(raw) in (int, float) and math.isfinite(raw) and raw > 0 else Decimal(10)
        )
        notional = total * min(pct, Decimal(100)) / Decimal(100)
    else:
        notional = per_trade
    return min(notional, per_trade).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def signal_intents(
    instance: StrategyInstance, result: dict[str, Any], snapshot: dict[str, Any], quote: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exits first (close the named open positions), then sized entries within max_positions.

    Returns (intents, skipped-actions). Everything here is trusted code over untrusted signals.
    """
    prefix = snapshot["order_id_prefix"]
    intents: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    positions = {str(p.get("position_id")): p for p in snapshot.get("positions") or [] if isinstance(p, dict)}
    n = 0
    closed: set[str] = set()
    for sig in result.get("exits") or []:
        pid = str(sig.get("position_id")) if isinstance(sig, dict) else ""
        pos = positions.get(pid)
        if pos is None or pid in closed:
            skipped.append(
                {"kind": "skipped", "signal": "exit", "position_id": pid, "deny_code": "UNKNOWN_POSITION"}
            )
            continue
        qty = float(pos.get("signed_qty") or 0)
        if qty == 0:
            continue
        closed.add(pid)
        n += 1
        intents.append(
            {
                "kind": "order",
                "client_order_id": f"{prefix}-{n}",
                "side": "sell" if qty > 0 else "buy",
                "qty": abs(qty),
                "type": "market",
                "price": None,
                "tag": ("exit:" + str(sig.get("reason") or ""))[:64],
            }
        )
    open_after = len([p for p in positions if p not in closed])
    slots = max(int(instance.max_positions) - open_after, 0)
    price = Decimal(str(quote["ask"]))
    lot = Decimal(instance.market.lot_size)
    for sig in result.get("entries") or []:
        if not isinstance(sig, dict):
            continue
        side = "sell" if sig.get("side") == "short" else "buy"
        reason = str(sig.get("reason") or "")[:200]
        if slots <= 0:
            skipped.append(
                {
                    "kind": "skipped",
                    "signal": "entry",
                    "side": side,
                    "tag": ("entry:" + reason)[:64],
                    "deny_code": "MAX_POSITIONS_REACHED",
                    "message": f"entry signal not taken: {int(instance.max_positions)} open position(s) is the"
                    f" instance's max_positions ({reason or 'no reason given'})",
                }
            )
            continue
        confidence = sig.get("confidence", 1.0)
        if type(confidence) not in (int, float):
            confidence = 0.0
        try:
            qty = _lot_floor(entry_notional(instance, confidence, instance.config or {}) / price, lot)
        except (InvalidOperation, ZeroDivisionError):
            qty = Decimal(0)
        if qty <= 0:
            skipped.append(
                {
                    "kind": "skipped",
                    "signal": "entry",
                    "side": side,
                    "tag": ("entry:" + reason)[:64],
                    "deny_code": "SIZE_ZERO",
                    "confidence": confidence,
                    "message": "the sized quantity is below the market's lot size",
                }
            )
            continue
        slots -= 1
        n += 1
        intents.append(
            {
                "kind": "order",
                "client_order_id": f"{prefix}-{n}",
                "side": side,
                "qty": float(qty),
                "type": "market",
                "price": None,
                "tag": ("entry:" + reason)[:64],
            }
        )
    return intents, skipped


# --- the tick --------------------------------------------------------------------------------------


def _call_strategy(
    instance: StrategyInstance, rt: dict[str, Any], tick: dict[str, Any], snapshot: dict[str, Any], key: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the user's code once; returns (raw result, intents, skipped actions)."""
    tenant_id = str(instance.tenant_id)
    sync = sandboxes.ensure_runtime_loaded(instance, rt, key)
    client = sandboxes.client()
    if sandboxes.style_of(instance.version) == "signal_bundle":
        result = client.signal_cycle(tenant_id, key, snapshot, state=sync)
    else:
        result = client.tick(tenant_id, key, tick, snapshot, state=sync)
    return _strategy_outcome(instance, result, snapshot)


def _strategy_outcome(
    instance: StrategyInstance, result: dict[str, Any], snapshot: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The host's reply re-checked in trusted code (`replies`); forged intents come back denied."""
    signal = sandboxes.style_of(instance.version) == "signal_bundle"
    checked, intents, skipped = host_replies.strategy_outcome(
        instance, result, snapshot, signal=signal, limits=sandboxes.limits()
    )
    if signal:
        intents, more = signal_intents(instance, checked, snapshot, snapshot["quote"])
        skipped = skipped + more
    return checked, intents, skipped


def _run_due_in_hosts(pre: Prefetched, entries: list[tuple[str, float, Any]]) -> None:
    """Run the user code of several due ticks of a batch together: one host round trip per tenant.

    Only ticks that will surely run are taken (begun, loaded, not paused, nothing in flight, not
    late, desired state applied, a quote); `_execute` then finds the snapshot and the host's answer
    ready and does everything else exactly as for a tick run alone. With nothing else to wait for,
    the hosts run the ticks back to back instead of waking the worker between every two.
    """
    calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for iid, due, began in entries:
        pre.host_tried.add(iid)
        if began is None or began[0] != "ok" or began[2] is None:
            continue
        rt = began[2]
        slot = int(due)
        instance = pre.instances.get(iid)
        if (
            not rt["loaded"]
            or rt["paused"]
            or rt.get("inflight")
            or slot <= rt["tick_seq"]
            or time.time() - slot > max(conf.get("ENGINE_MAX_LATENESS"), 2.0 * (rt.get("freq") or 1))
            or instance is None
            or instance.mode == Mode.OFF
            or instance.tenant.killed_at is not None
            or not runtime.desired_applied(rt, instance.version_id, instance.config_revision, instance.config)
        ):
            continue
        quote = pre.quotes.get(instance.market_id)
        if not quote:
            continue
        snapshot = _snapshot(instance, quote, instance.mode, f"{iid}-{slot}", pre.trusted(instance))
        pre.built[iid] = snapshot
        try:
            sync = sandboxes.ensure_runtime_loaded(instance, rt, iid)
        except Exception:  # the tick alone reports the load failure
            sandboxes.forget(iid)
            continue
        call: dict[str, Any] = {"instance_id": iid, "snapshot": snapshot, "state": sync}
        if sandboxes.style_of(instance.version) == "signal_bundle":
            call["cmd"] = "signal_cycle"
        else:
            call["cmd"] = "tick"
            call["tick"] = _tick_from_quote(quote, instance.market.code)
        calls.setdefault(str(instance.tenant_id), []).append((iid, call))
    for tenant_id, tenant_calls in calls.items():
        try:
            results = sandboxes.client().cycle_many(tenant_id, [call for _, call in tenant_calls])
        except Exception:
            logger.exception("batched host call failed; running the ticks one by one")
            results = [None] * len(tenant_calls)
        for (iid, _), result in zip(tenant_calls, results, strict=True):
            if result is None:
                sandboxes.forget(iid)  # not run: the host's copy is not what the tick expects
            else:
                pre.host_results[iid] = result


def _action(intent: dict[str, Any], result: Any) -> dict[str, Any]:
    order = getattr(result, "order", None)
    return {
        "kind": "shadow"
        if getattr(result, "status", "") == "shadow"
        else ("denied" if getattr(result, "deny_code", None) else "order"),
        "client_order_id": intent.get("client_order_id"),
        "side": intent.get("side"),
        "qty": intent.get("qty")
        if type(intent.get("qty")) in (int, float) and math.isfinite(intent["qty"])
        else None,
        "type": intent.get("type"),
        # The fill price once filled (a market order has no price of its own), else the limit.
        "price": float(order.fill_price)
        if order is not None and getattr(order, "fill_price", None) is not None
        else (
            intent.get("price")
            if type(intent.get("price")) in (int, float) and math.isfinite(intent["price"])
            else None
        ),
        # The strategy's tag; for signal-style orders "entry:<reason>" / "exit:<reason>".
        "tag": intent.get("tag") if type(intent.get("tag")) is str else None,
        "status": getattr(result, "status", None),
        "deny_code": getattr(result, "deny_code", None),
        "message": getattr(result, "message", "") or "",
        "order_id": str(order.pk) if order is not None else None,
    }


def _cap_logs(logs: list[Any]) -> tuple[list[dict[str, Any]], int]:
    max_lines = conf.get("ENGINE_RUN_MAX_LOG_LINES")
    max_chars = conf.get("ENGINE_RUN_MAX_LOG_CHARS")
    clean = [  # clean_text: a NUL in a log line must not fail the run's insert (jsonb refuses it)
        {
            "level": clean_text(str(line.get("level", "info"))[:10]),
            "msg": clean_text(str(line.get("msg", ""))[:max_chars]),
        }
        for line in logs
        if isinstance(line, dict)
    ]
    return clean[:max_lines], max(len(clean) - max_lines, 0)


def _keep_run(
    iid: str, trigger: str, actions: list[Any], error: Any, slot: int, freq: int, first: bool
) -> bool:
    """Whether a run is stored: always with actions or an error, the first after a load, and 1 in
    ENGINE_RUN_SAMPLE_EVERY quiet ones. Each instance samples at its own offset (from its id): on a
    common one, every 1-second instance stored its quiet run in the same second of each minute,
    1,000 inserts at once at N = 1,000 instead of ~17 a second."""
    if trigger != RunTrigger.SCHEDULED or actions or error or first:
        return True
    every = max(conf.get("ENGINE_RUN_SAMPLE_EVERY"), 1)
    return (slot // max(freq, 1) + (uuid.UUID(iid).int >> 32)) % every == 0


def _record_run(
    *,
    instance: StrategyInstance,
    trigger: str,
    status: str,
    seq: int | None,
    due_at: float | None,
    started: float,
    finished: float,
    config: dict[str, Any],
    mode: str,
    logs: list[Any],
    actions: list[dict[str, Any]],
    error: dict[str, Any] | None,
    replay: bool = True,
) -> Run:
    """Store the run. `replay=False` (a slot run for the first time, which its claim guarantees):
    a plain insert; otherwise the first attempt may have stored it already (a savepoint catches it)."""
    kept_logs, dropped = _cap_logs(logs)
    run = Run(
        tenant_id=instance.tenant_id,
        instance_id=instance.pk,
        trigger=trigger,
        status=status,
        tick_seq=seq,
        due_at=datetime.fromtimestamp(due_at, tz=UTC) if due_at else None,
        started_at=datetime.fromtimestamp(started, tz=UTC),
        finished_at=datetime.fromtimestamp(finished, tz=UTC),
        duration_ms=round((finished - started) * 1000, 3),
        version_id=instance.version_id,
        config_revision=instance.config_revision,
        config_snapshot=config,
        mode=mode,
        logs=kept_logs,
        logs_dropped=dropped,
        actions=clean_json(actions),
        error_code=(error or {}).get("code") or "",
        error_message=clean_text(((error or {}).get("message") or "")[:4000]),
        traceback=clean_text(((error or {}).get("traceback") or "")[:20000]),
        worker=runtime.worker_id(),
    )
    if trigger == RunTrigger.SCHEDULED and not replay:
        # One plain INSERT (`Model.save` cost a tenth of a busy worker's time here).
        sql, values = row_write(run)
        with connection.cursor() as cursor:
            cursor.execute(sql + " RETURNING id", values)
            run.pk = cursor.fetchone()[0]
        mark_saved(run)
    elif trigger == RunTrigger.SCHEDULED:
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            # A replayed slot (crash recovery) whose first attempt already recorded its run.
            run = Run.objects.filter(instance_id=instance.pk, tick_seq=seq, trigger=trigger).first() or run
    else:
        run.save()
    return run


def _error_dict(exc: BaseException) -> dict[str, Any]:
    from sandbox import SandboxError

    if isinstance(exc, SandboxError):
        # A host's own words: made storable (no NUL or lone surrogate reaches PostgreSQL).
        return host_replies.error_fields(str(exc.code), exc.message, exc.line, exc.traceback)
    return {
        "code": "ENGINE_ERROR",
        "message": f"{type(exc).__name__}: {exc}"[:1000],
        "line": None,
        "traceback": None,
        "engine_traceback": tb_module.format_exc()[-4000:],
    }


MAX_REPLAYS = 3


def _count_coalesced(iid: str) -> None:
    pipe = runtime.r().pipeline()
    pipe.hincrby(runtime.rt_key(iid), "coalesced_ticks", 1)
    runtime.stats_incr(pipe, iid, coalesced=1)
    pipe.execute()


@dataclass
class _Lock:
    """The tick lock held by `tick_run`; a successful tick releases it in its final round trip."""

    token: str
    released: bool = False


def tick_run(
    instance_id: Any,
    due_at: float,
    trigger: str = RunTrigger.SCHEDULED,
    prefetched: Prefetched | None = None,
    begun: tuple[str, str | None, dict[str, Any] | None] | None = None,
) -> TickOutcome:
    """Run one scheduled slot of one instance (idempotent; safe to call from any worker, any number of times).

    `begun` is this slot's `runtime.tick_begin` result when the batch already began it."""
    iid = str(instance_id)
    slot = int(due_at)
    r = runtime.r()
    status, token, rt = begun if begun is not None else runtime.tick_begin(iid, slot)
    if status == "duplicate":
        return TickOutcome(status="duplicate")
    if token is None:
        _count_coalesced(iid)
        return TickOutcome(status="coalesced")
    lock = _Lock(token)
    try:
        if rt is None or not rt["loaded"]:
            return TickOutcome(status="not_loaded")
        max_late = max(conf.get("ENGINE_MAX_LATENESS"), 2.0 * (rt.get("freq") or 1))
        if trigger == RunTrigger.SCHEDULED and time.time() - slot > max_late and not rt.get("inflight"):
            # Behind schedule (overload) or a message redelivered long after its slot: the schedule has
            # moved on, so shed this tick (counted) instead of acting on an old price.
            _count_coalesced(iid)
            return TickOutcome(status="late")
        recovered = False
        inflight = rt.get("inflight")
        if inflight and int(inflight.get("attempts") or 0) >= MAX_REPLAYS:
            # A tick that keeps failing in trusted code must not block the instance forever.
            logger.error(
                "abandoning in-flight tick %s of %s after %s replays", inflight.get("seq"), iid, MAX_REPLAYS
            )
            r.hdel(runtime.rt_key(iid), "inflight")
            rt["inflight"] = None
        elif inflight:
            inflight["attempts"] = int(inflight.get("attempts") or 0) + 1
            r.hset(runtime.rt_key(iid), "inflight", runtime.dumps(inflight))
        if rt.get("inflight"):
            _execute(
                iid,
                rt,
                slot=int(rt["inflight"]["slot"]),
                trigger=rt["inflight"].get("trigger") or trigger,
                inflight=rt["inflight"],
            )
            recovered = True
            rt = runtime.rt_get(iid)
            if rt is None or not rt["loaded"]:
                return TickOutcome(status="not_loaded", recovered=True)
        if rt["paused"]:
            runtime.stats_incr(r, iid, skipped=1)
            return TickOutcome(status="paused", recovered=recovered)
        if trigger == RunTrigger.SCHEDULED and slot <= rt["tick_seq"]:
            return TickOutcome(status="late", recovered=recovered)  # never run a slot older than the last one
        outcome = _execute(
            iid, rt, slot=slot, trigger=trigger, prefetched=prefetched, lock=lock, due=float(due_at)
        )
        outcome.recovered = recovered
        return outcome
    finally:
        if not lock.released:
            runtime.lock_release(iid, token)


def _execute(
    iid: str,
    rt: dict[str, Any],
    *,
    slot: int,
    trigger: str,
    inflight: dict[str, Any] | None = None,
    prefetched: Prefetched | None = None,
    lock: _Lock | None = None,
    due: float | None = None,
) -> TickOutcome:
    """Run one tick under the caller's lock; with `lock`, a successful tick also releases it."""
    from stratbox.engine.reconciler import instance_unload, reconcile_one

    r = runtime.r()
    # Prefetched rows were read for this batch a moment ago; a recovery always re-reads.
    instance = prefetched.instances.get(iid) if prefetched and inflight is None else _instance(iid)
    if instance is None or instance.mode == Mode.OFF:
        instance_unload(iid, locked=True)
        return TickOutcome(status="off")
    if instance.tenant.killed_at is not None:
        r.hdel(runtime.rt_key(iid), "inflight")
        pause_runtime(instance, PauseReason.KILL_SWITCH)
        return TickOutcome(status="paused")
    if inflight is None and not runtime.desired_applied(
        rt, instance.version_id, instance.config_revision, instance.config
    ):
        # The desired state changed and its on-commit reconcile has not reached us yet: apply it now.
        rt = reconcile_one(instance, locked=True) or rt
        if not rt.get("loaded") or rt.get("paused"):
            return TickOutcome(status="not_loaded")
    mode = instance.mode
    if inflight is not None:
        seq = int(inflight["seq"])
        tick = inflight["tick"]
        quote = inflight["quote"]
        due_at = float(inflight.get("due_at") or slot)
    else:
        seq = slot
        due_at = float(due) if due is not None and int(due) == slot else float(slot)
        quote = prefetched.quotes.get(instance.market_id) if prefetched else _quote_now(instance)
        if not quote:
            now = time.time()
            pipe = r.pipeline()
            runtime.stats_incr(pipe, iid, runs=1, skipped=1)
            pipe.hset(runtime.rt_key(iid), mapping={"last_tick_at": now, "worker": runtime.worker_id()})
            pipe.execute()
            return TickOutcome(
                status="skipped", error={"code": "NO_QUOTE", "message": "no quote for the market"}
            )
        tick = _tick_from_quote(quote, instance.market.code)
    prefix = f"{iid}-{seq}"
    started = time.time()
    # The in-flight record (what a replay needs: the tick input, quote and tick_seq) is written
    # before the first order is placed — and only then: a tick that dies before ordering anything
    # has no effect outside its own state, so it is simply lost (the state stays at the last
    # persisted revision). Quiet ticks, the vast majority, save the round trip.
    inflight_record = runtime.dumps(
        {
            "attempts": int((inflight or {}).get("attempts") or 0),
            "slot": slot,
            "seq": seq,
            "tick": tick,
            "quote": quote,
            "trigger": trigger,
            "due_at": due_at,
            "started": started,
            "worker": runtime.worker_id(),
        }
    )
    if inflight is not None:
        r.hset(runtime.rt_key(iid), "inflight", inflight_record)
    config = rt.get("config") or {}
    actions: list[dict[str, Any]] = []
    try:
        t_snap = time.perf_counter()
        # The batch's snapshot was taken at the batch's quote, which is the quote this tick uses.
        built = prefetched.built.pop(iid, None) if prefetched and inflight is None else None
        if built is not None and built.get("order_id_prefix") == prefix:
            snapshot = built
        else:
            trusted = prefetched.trusted(instance) if prefetched and inflight is None else None
            snapshot = _snapshot(instance, quote, mode, prefix, trusted)
        t_user = time.perf_counter()
        ran = prefetched.host_results.pop(iid, None) if built is snapshot and prefetched else None
        if isinstance(ran, Exception):
            raise ran
        if ran is not None:
            result, intents, skipped = _strategy_outcome(instance, ran, snapshot)
        else:
            result, intents, skipped = _call_strategy(instance, rt, tick, snapshot, iid)
        phases = (t_user - t_snap, time.perf_counter() - t_user)
    except Exception as exc:
        return _fail(
            instance,
            rt,
            exc,
            slot=slot,
            seq=seq,
            due_at=due_at,
            started=started,
            trigger=trigger,
            mode=mode,
            config=config,
        )
    now_dt = timezone.now()
    from stratbox.trading.services import order_place

    order_ms: list[float] = []
    filled: list[Any] = []  # this tick's real orders that filled (for the day's P&L after them)
    if intents and prefetched is not None:
        prefetched.flush()  # a death while ordering loses this tick only, never a quiet one before it
    if intents and inflight is None:
        r.hset(runtime.rt_key(iid), "inflight", inflight_record)
    for intent in intents:
        cid = intent.get("client_order_id")
        if not isinstance(cid, str) or not cid.startswith(prefix + "-"):
            actions.append(
                _action(intent, None)
                | {
                    "kind": "denied",
                    "deny_code": "INVALID_ORDER",
                    "message": "client_order_id does not match this tick",
                }
            )
            continue
        try:
            t_order = time.perf_counter()
            placed = order_place(instance=instance, intent=intent, quote=quote, mode=mode, now=now_dt)
            order_ms.append((time.perf_counter() - t_order) * 1000)
        except Exception as exc:
            logger.exception("order_place failed for %s", cid)
            actions.append(
                _action(intent, None)
                | {"kind": "denied", "deny_code": "ENGINE_ERROR", "message": str(exc)[:200]}
            )
            continue
        actions.append(_action(intent, placed))
        order = placed.order
        if order is not None and order.filled_at is not None and not order.is_shadow and not placed.duplicate:
            filled.append(order)
        if prefetched is not None and placed.status != "shadow":
            prefetched.balance_changed(instance)
    actions.extend(skipped)
    failpoint = conf.get("ENGINE_FAILPOINT_SLEEP_AFTER_ORDERS")
    if failpoint and intents:
        time.sleep(failpoint)
    paused_reason = _daily_loss_check(instance, mode, actions, snapshot, quote, filled)
    finished = time.time()
    new_state = result["state"]  # checked: an object of plain data (`replies.state_json`)
    logs = list(result.get("logs") or [])
    placed_orders = sum(1 for a in actions if a["kind"] in ("order", "shadow"))
    keep = _keep_run(iid, trigger, actions, None, slot, int(rt.get("freq") or 1), rt["state_rev"] == 0)
    run = None
    if keep:
        run = _record_run(
            instance=instance,
            trigger=trigger,
            status=RunStatus.OK,
            seq=seq,
            due_at=due_at,
            started=started,
            finished=finished,
            config=config,
            mode=mode,
            logs=logs,
            actions=actions,
            error=None,
            replay=inflight is not None,
        )
    new_rev = rt["state_rev"] + 1
    # One atomic round trip ends the tick (or, for a quiet tick of a batch, the batch's quiet ticks
    # together): state, counters, the events' seqs and the lock.
    tick_events = _tick_events(seq, finished, logs, actions, run, "ok", started)
    end = runtime.TickEnd(
        iid=iid,
        token=lock.token if lock is not None else None,
        finished=finished,
        fields={
            "state": result["state_json"],
            "state_rev": new_rev,
            "last_tick_at": finished,
            "last_due_at": due_at,
            "last_duration_ms": round((finished - started) * 1000, 3),
            "consecutive_failures": 0,
            "last_error": "",
            "worker": runtime.worker_id(),
            "tick_seq": seq,
        },
        events=len(tick_events),
        orders=placed_orders,
        seq_key=events.SEQ_KEY.format(iid),
    )
    if conf.get("ENGINE_METRICS"):
        end.metric = (due_at, started, phases[0], phases[1], sum(order_ms) / 1000)
        end.order_metrics = [f"{ms:.3f}" for ms in order_ms]

    def after(last_seq: int) -> None:
        sandboxes.advanced(iid, rt.get("load_id") or "", config, new_rev)
        if prefetched is None or prefetched.audience is None or iid in prefetched.audience:
            events.publish_reserved(
                tenant_id=instance.tenant_id, instance_id=iid, events=tick_events, last_seq=last_seq
            )
        if paused_reason:
            _auto_pause(instance, paused_reason, {"tick_seq": seq})
        tick_notify(instance=instance, actions=actions, logs=logs, slot=seq)  # fills, denials, context.notify

    if prefetched is not None and inflight is None and not intents and not paused_reason:
        prefetched.defer(end, after)
    else:
        last_seq = runtime.tick_end_many([end])[0]
        after(last_seq)
    if lock is not None:
        lock.released = True  # by the tick's end (`Prefetched.flush` also if that fails)
    return TickOutcome(
        status="ok",
        run_id=run.pk if run else None,
        actions=actions,
        logs=logs,
        state=new_state,
        recovered=inflight is not None,
    )


def _fail(
    instance: StrategyInstance,
    rt: dict[str, Any],
    exc: BaseException,
    *,
    slot: int,
    seq: int,
    due_at: float,
    started: float,
    trigger: str,
    mode: str,
    config: dict[str, Any],
) -> TickOutcome:
    """A failed tick: record it, keep the last good state, count towards the circuit breaker."""
    iid = str(instance.pk)
    sandboxes.forget(iid)  # the host may hold a half-mutated state; reload from Redis next time
    error = _error_dict(exc)
    status = RunStatus.TIMEOUT if error["code"] == "TIMEOUT" else RunStatus.ERROR
    finished = time.time()
    run = _record_run(
        instance=instance,
        trigger=trigger,
        status=status,
        seq=seq,
        due_at=due_at,
        started=started,
        finished=finished,
        config=config,
        mode=mode,
        logs=[],
        actions=[],
        error=error,
    )
    r = runtime.r()
    key = runtime.rt_key(iid)
    pipe = r.pipeline()
    # Only the strategy's own failures count towards its circuit breaker: a platform fault (database
    # down, ...) is recorded but must not pause every instance of every tenant.
    pipe.hincrby(key, "consecutive_failures", 0 if error["code"] == "ENGINE_ERROR" else 1)
    pipe.hset(
        key,
        mapping={
            "last_error": runtime.dumps(
                {
                    "code": error["code"],
                    "message": error["message"],
                    "line": error.get("line"),
                    "at": finished,
                    "run_id": run.pk,
                }
            ),
            "last_tick_at": finished,
            "worker": runtime.worker_id(),
            "tick_seq": seq,
        },
    )
    pipe.hdel(key, "inflight")
    pipe.sadd(runtime.DIRTY_KEY, iid)
    runtime.stats_incr(pipe, iid, runs=1, failed=1)
    pipe.hset(runtime.stats_key(iid), "last_run_at", finished)
    failures = pipe.execute()[0]
    _publish_tick(instance, seq, finished, [], [], run, status, started, error=error)
    if failures >= conf.get("ENGINE_CIRCUIT_BREAKER_FAILURES"):
        _auto_pause(
            instance,
            PauseReason.CIRCUIT_BREAKER,
            {"consecutive_failures": failures, "last_error": error["code"]},
        )
    if error["code"] == "ENGINE_ERROR":
        logger.error("engine error on %s: %s", iid, error.get("engine_traceback"))
    return TickOutcome(status=status, run_id=run.pk, error=error)


def _daily_loss_check(
    instance: StrategyInstance,
    mode: str,
    actions: list[dict[str, Any]],
    snapshot: dict[str, Any],
    quote: dict[str, Any],
    filled: list[Any],
) -> str | None:
    """The pause reason if the day's loss reached the instance's limit after this tick.

    The day's P&L is the trusted snapshot's (realized today plus unrealized, at this tick's quote)
    moved by this tick's own fills: at a mark m, a fill of q at price p with fee f changes it by
    q·(m − p) − f for a buy and q·(p − m) − f for a sell (the cash paid against the value marked,
    the same whether it opens, adds or closes). A replayed tick (duplicates) and anything filled
    since the snapshot by others are not counted: the risk gate checks the stored figures under its
    locks before every order, and denies DAILY_LOSS_LIMIT, which pauses the instance too."""
    if any(a.get("deny_code") == "DAILY_LOSS_LIMIT" for a in actions):
        return PauseReason.DAILY_LOSS_LIMIT
    if mode != Mode.ACTIVE:
        return None
    today = (snapshot.get("pnl") or {}).get("today")
    if today is None:
        return None
    pnl = Decimal(today)
    if quote.get("price") is not None:
        mark = Decimal(str(quote["price"]))
        for order in filled:
            value = order.qty * (mark - order.fill_price)
            pnl += (value if order.side == "buy" else -value) - order.fee
    if pnl <= -Decimal(instance.max_daily_loss):
        return PauseReason.DAILY_LOSS_LIMIT
    return None


def _auto_pause(instance: StrategyInstance, reason: str, details: dict[str, Any]) -> None:
    with transaction.atomic():
        if pause_runtime(instance, reason):
            audit_record(
                tenant=instance.tenant,
                actor=None,
                actor_label="engine",
                action="instance.auto_pause",
                target=instance,
                after={"paused": True, "reason": reason, **details},
            )


def _publish_tick(
    instance: StrategyInstance,
    seq: int,
    finished: float,
    logs: list[Any],
    actions: list[dict[str, Any]],
    run: Run | None,
    status: str,
    started: float,
    error: dict[str, Any] | None = None,
) -> None:
    batch = _tick_events(seq, finished, logs, actions, run, status, started, error)
    events.publish_many(tenant_id=instance.tenant_id, instance_id=instance.pk, events=batch)


def _tick_events(
    seq: int,
    finished: float,
    logs: list[Any],
    actions: list[dict[str, Any]],
    run: Run | None,
    status: str,
    started: float,
    error: dict[str, Any] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The dashboard events of one tick: its log lines (≤ 20), its actions, its run summary."""
    batch: list[tuple[str, dict[str, Any]]] = []
    for line in logs[:20]:
        if isinstance(line, dict):
            batch.append(
                (
                    "log",
                    {
                        "level": line.get("level", "info"),
                        "msg": str(line.get("msg", ""))[:500],
                        "tick_seq": seq,
                    },
                )
            )
    for action in actions:
        batch.append(("action", action | {"tick_seq": seq}))
    batch.append(
        (
            "run",
            {
                "run_id": run.pk if run else None,
                "tick_seq": seq,
                "status": status,
                "duration_ms": round((finished - started) * 1000, 3),
                "finished_at": finished,
                "actions": len(actions),
                "error": {"code": error["code"], "message": error["message"], "line": error.get("line")}
                if error
                else None,
            },
        )
    )
    return batch


# --- test run ---------------------------------------------------------------------------------------


def test_run(instance: StrategyInstance, actor: Any = None) -> tuple[Run, dict[str, Any]]:
    """One cycle now, with the current config, in a sandbox; nothing reaches a broker or the runtime.

    It starts from the instance's current runtime state when it is loaded at the current
    fingerprint (what the next tick would see), otherwise from a fresh `init()`. Intents become
    would-be actions, checked against the risk gate read-only. Returns the recorded run and
    `{"state": ..., "intents": [...], "quote": ...}`.
    """
    iid = str(instance.pk)
    key = f"dry:{iid}"
    tenant_id = str(instance.tenant_id)
    config = instance.config or {}
    mode = instance.mode if instance.mode != Mode.OFF else Mode.OBSERVE
    quote = _quote_now(instance)
    quote_source = "feed"
    if not quote:
        price = float(instance.market.sim_start_price)
        spread = float(instance.market.tick_size)
        quote = {
            "market": instance.market.code,
            "price": price,
            "bid": price - spread,
            "ask": price + spread,
            "volume": 0.0,
            "ts": time.time(),
        }
        quote_source = "synthetic"
    tick = _tick_from_quote(quote, instance.market.code)
    rt = runtime.rt_get(iid)
    state = None
    if (
        rt
        and rt["loaded"]
        and runtime.desired_applied(rt, instance.version_id, instance.config_revision, config)
    ):
        state = rt.get("state")
    prefix = f"{iid}-dry{int(time.time() * 1000)}"
    started = time.time()
    actions: list[dict[str, Any]] = []
    error = None
    result: dict[str, Any] = {}
    try:
        sandboxes.load(
            tenant_id=tenant_id,
            key=key,
            version=instance.version,
            config=config,
            fingerprint=runtime.fingerprint(instance.version_id, instance.config_revision),
            load_id="dry",
            state=state,
            state_rev=0,
            seed=None,
        )
        snapshot = _snapshot(instance, quote, mode, prefix)
        client = sandboxes.client()
        if sandboxes.style_of(instance.version) == "signal_bundle":
            raw = client.signal_cycle(tenant_id, key, snapshot)
        else:
            raw = client.tick(tenant_id, key, tick, snapshot)
        # Nothing of a refused reply is used, not even to answer the caller.
        result, intents, skipped = _strategy_outcome(instance, raw, snapshot)
        for intent in intents:
            actions.append(_would_be(instance, intent, quote, mode))
        actions.extend(skipped)
    except Exception as exc:
        error = _error_dict(exc)
    finally:
        sandboxes.unload(tenant_id, key)
    finished = time.time()
    status = (
        RunStatus.OK
        if error is None
        else (RunStatus.TIMEOUT if error["code"] == "TIMEOUT" else RunStatus.ERROR)
    )
    run = _record_run(
        instance=instance,
        trigger=RunTrigger.DRY_RUN,
        status=status,
        seq=None,
        due_at=None,
        started=started,
        finished=finished,
        config=config,
        mode=mode,
        logs=list(result.get("logs") or []),
        actions=actions,
        error=error,
    )
    events.publish(
        tenant_id=instance.tenant_id,
        instance_id=iid,
        kind="run",
        data={
            "run_id": run.pk,
            "trigger": RunTrigger.DRY_RUN,
            "status": status,
            "duration_ms": run.duration_ms,
            "actions": len(actions),
        },
    )
    state_out = result.get("state") if isinstance(result.get("state"), dict) else None
    return run, {"state": state_out, "quote": quote, "quote_source": quote_source, "mode": mode}


def _would_be(
    instance: StrategyInstance, intent: dict[str, Any], quote: dict[str, Any], mode: str
) -> dict[str, Any]:
    """What a real tick would do with this intent, checked read-only (the real gate runs locked)."""
    from stratbox.trading.risk import InvalidOrder, pre_trade_evaluate, validate_intent

    action = _action(intent, None) | {"kind": "would_place", "status": "dry_run"}
    try:
        req = validate_intent(instance=instance, intent=intent)
    except InvalidOrder as exc:
        return action | {
            "kind": "would_deny",
            "deny_code": "INVALID_ORDER",
            "message": f"{exc.field}: {exc.message}",
        }
    if mode != Mode.ACTIVE:
        return action | {"kind": "would_shadow", "status": "dry_run"}
    decision = pre_trade_evaluate(instance=instance, order_request=req, quote=quote)
    if decision.deny is not None:
        return action | {"kind": "would_deny", "deny_code": str(decision.deny), "message": decision.message}
    return action
