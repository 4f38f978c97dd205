"""Celery tasks of governance: ids and primitives in, the services do the work."""

from __future__ import annotations

from celery import shared_task

from stratbox.governance.graduation_notify import graduation_notify_sweep


@shared_task(name="governance.graduation_sweep", ignore_result=True)
def graduation_sweep_task() -> int:
    return graduation_notify_sweep()
