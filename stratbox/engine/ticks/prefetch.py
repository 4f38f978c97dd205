"""A batch's prefetch: rows, quotes, trusted snapshots and audience read once for all its ticks,
and the batch's quiet ticks persisted together (`Prefetched.defer` / `flush`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from stratbox.engine import events, runtime, sandboxes
from stratbox.engine.ticks.inputs import histories_for
from stratbox.engine.ticks.rows import instances_for_batch
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quotes_get_many
from stratbox.trading.models import Account
from stratbox.trading.snapshot_cache import instance_snapshots_cached

logger = logging.getLogger(__name__)


class Batch:
    """What the ticks of one batch share: rows, quotes and trusted snapshots read once for all of
    them, and the persisting of its quiet ticks together.

    One query for the row stamps and balances (rows are rebuilt only when they moved), one Redis
    round trip for the quotes, and the trusted snapshots of the whole batch from
    `trading.snapshot_cache` (one Redis round trip; one more to PostgreSQL, four statements
    pipelined, only for instances whose ledger changed).
    A tick that places orders changes its account's balance: later ticks of the batch on the same
    account that did not run in a host yet re-read just that balance (`balance_changed`), so no
    snapshot is staler than the batch (the risk gate re-reads the balance under its lock anyway).

    `instances`, `quotes`, `histories` and `audience` are read once and never written; the rest
    changes only through the methods (`trusted`, `balance_changed`, `defer`, `flush`).
    """

    __slots__ = (
        "_balances",
        "_pending",
        "_stale_accounts",
        "audience",
        "histories",
        "instances",
        "lost",
        "quotes",
        "snapshots",
    )

    def __init__(
        self,
        instances: dict[str, StrategyInstance],
        quotes: dict[int, dict[str, Any]],
        snapshots: dict[str, dict[str, Any]],
        audience: set[str] | None,
        histories: dict[int, dict[str, list[float]]] | None = None,
    ) -> None:
        self.instances = instances
        self.quotes = quotes
        # Recent bars of the markets whose instances read `context.history` (none for the others).
        self.histories = histories or {}
        # The trusted snapshots not taken yet (`trusted` takes each once).
        self.snapshots = snapshots
        # Instance ids somebody watches on the dashboard (None: unknown, publish every tick's events).
        self.audience = audience
        self._stale_accounts: set[Any] = set()
        self._balances: dict[Any, str] = {}
        # Quiet ticks (no order, no pause) that ran but are not persisted yet, and what follows
        # their persisting: `flush` ends them all in one round trip (see `defer`).
        self._pending: list[tuple[runtime.TickEnd, Callable[[int], None]]] = []
        # Instances whose quiet tick could not be persisted (`flush`): the batch reports them failed.
        self.lost: set[str] = set()

    def trusted(self, instance: StrategyInstance) -> dict[str, Any] | None:
        snap = self.snapshots.pop(str(instance.pk), None)
        if snap is None:
            return None
        account = instance.account_id
        if account in self._stale_accounts:
            self._balances[account] = str(
                Account.objects.filter(pk=account).values_list("balance", flat=True).first() or Decimal(0)
            )
            self._stale_accounts.discard(account)
        if account in self._balances:
            snap["balance"] = self._balances[account]
        return snap

    def balance_changed(self, instance: StrategyInstance) -> None:
        self._stale_accounts.add(instance.account_id)

    def defer(self, end: runtime.TickEnd, after: Callable[[int], None]) -> None:
        """Persist this quiet tick with the others of its batch at the next `flush`.

        The batch flushes before a tick places an order, before it waits for a later due time, before
        the next host round trip and at its end. So the ticks that a worker's death can lose are the
        ones in flight together (one host round trip), and only quiet ones: nothing outside their
        own state changed, and each instance simply continues from its last persisted revision.
        """
        self._pending.append((end, after))

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
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


def prefetch(instance_ids: list[str]) -> Batch:
    balances: dict[Any, Any] = {}
    instances = instances_for_batch(instance_ids, balances)
    quotes = quotes_get_many({i.market_id for i in instances.values()})
    quoted = [i for i in instances.values() if i.mode != Mode.OFF and quotes.get(i.market_id)]
    histories = histories_for(quoted)
    try:
        many = instance_snapshots_cached(instances=quoted, quotes=quotes, balances=balances)
    except Exception:  # the per-tick path still works: fall back to it rather than lose the batch
        logger.exception("batched snapshot failed; falling back to one snapshot per tick")
        many = {}
    audience = None
    try:
        audience = events.audience([(pk, i.tenant_id) for pk, i in instances.items()])
    except Exception:  # unknown audience: publish everything, as without the check
        logger.warning("audience check failed", exc_info=True)
    return Batch(instances, quotes, {str(pk): snap for pk, snap in many.items()}, audience, histories)
