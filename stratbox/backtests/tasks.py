"""Celery tasks of backtests (ids in; the service is idempotent)."""

from __future__ import annotations

from celery import shared_task

from stratbox.backtests.runner import backtest_run


@shared_task(name="backtests.backtest_run", acks_late=True)
def backtest_run_task(backtest_id: str) -> str:
    return backtest_run(backtest_id)
