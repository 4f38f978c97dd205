"""Celery tasks of plugins."""

from __future__ import annotations

from celery import shared_task

from stratbox.plugins.services import stale_sweep


@shared_task(name="plugins.stale_sweep", ignore_result=True)
def stale_sweep_task() -> int:
    return stale_sweep()
