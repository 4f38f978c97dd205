"""Celery tasks of the engine: ids and primitives in, the services do the work, all idempotent."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from stratbox.engine import sandboxes
from stratbox.engine.dispatcher import RUN_TICKS_TASK, dispatch_once, markets_mark_to_market
from stratbox.engine.reconciler import reconcile
from stratbox.engine.runs import runs_prune
from stratbox.engine.snapshots import flush_all
from stratbox.engine.ticks.batch import batch_item, tick_run_batch

logger = logging.getLogger(__name__)


@shared_task(name=RUN_TICKS_TASK, acks_late=True, ignore_result=True)
def run_ticks_task(items: list[list[Any]]) -> None:
    """Run a batch of `[instance_id, due_slot]` ticks (quote ticks: `[instance_id, due, seq]`);
    each is claimed, so a redelivery is a no-op."""
    tick_run_batch([batch_item(item) for item in items])


@shared_task(name="engine.dispatch", ignore_result=True)
def dispatch_task() -> int:
    enqueued = dispatch_once()
    try:
        markets_mark_to_market()
    except Exception:  # resting-order fills must never stop the schedule
        logger.exception("mark to market failed")
    return enqueued


@shared_task(name="engine.reconcile", acks_late=True, ignore_result=True)
def reconcile_task(instance_ids: list[str] | None = None) -> dict[str, Any]:
    report = reconcile(instance_ids)
    return {
        "loaded": report.loaded,
        "reloaded": report.reloaded,
        "unloaded": report.unloaded,
        "updated_live": report.updated_live,
        "failed": report.failed,
    }


@shared_task(name="engine.snapshot_flush", ignore_result=True)
def snapshot_flush_task() -> int:
    """The dispatcher process flushes every few seconds; this task is for operations and cron."""
    return flush_all()


@shared_task(name="engine.runs_prune", ignore_result=True)
def runs_prune_task() -> int:
    return runs_prune()


@shared_task(name="engine.venue_reconcile", ignore_result=True, acks_late=True)
def venue_reconcile_task(account_id: str) -> str:
    """Reconcile one live account with its venue (idempotent: it re-reads both sides)."""
    from stratbox.engine.venue_reconcile import account_reconcile
    from stratbox.trading.models import Account

    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return "gone"
    return str(account_reconcile(account=account).status)


@shared_task(name="engine.venue_reconcile_all", ignore_result=True)
def venue_reconcile_all_task() -> int:
    """Beat and worker start-up: one reconcile task per live account with credentials."""
    from stratbox.engine.venue_reconcile import live_accounts_to_reconcile

    accounts = live_accounts_to_reconcile()
    for account in accounts:
        venue_reconcile_task.delay(str(account.pk))
    return len(accounts)


@shared_task(name="engine.venue_catalogue_resync", ignore_result=True)
def venue_catalogue_resync_task() -> dict[str, str]:
    from stratbox.engine.venue_reconcile import venue_catalogues_resync

    return venue_catalogues_resync()


@worker_ready.connect
def _reconcile_at_startup(sender: Any = None, **kwargs: Any) -> None:
    """A (re)started worker reconciles once: the desired state may have changed while nothing ran,
    and a live account's venue may have filled or cancelled orders meanwhile."""
    try:
        reconcile_task.delay(None)
        venue_reconcile_all_task.delay()
    except Exception:
        logger.warning("could not enqueue the start-up reconcile", exc_info=True)


@worker_shutdown.connect
def _close_sandbox(sender: Any = None, **kwargs: Any) -> None:
    sandboxes.close()
