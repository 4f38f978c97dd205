"""Celery tasks of backtests (ids in; the service is idempotent)."""

from __future__ import annotations

from celery import shared_task

from stratbox.backtests.runner import WAITING, backtest_run

# While the tenant already runs its plan's number of backtests, the run waits: the task comes back
# after this many seconds (other tenants' runs take the pool's free slots meanwhile).
WAIT_RETRY_SECONDS = 2.0


@shared_task(name="backtests.backtest_run", acks_late=True)
def backtest_run_task(backtest_id: str) -> str:
    status = backtest_run(backtest_id)
    if status == WAITING:
        backtest_run_task.apply_async(args=[backtest_id], countdown=WAIT_RETRY_SECONDS)
    return status
