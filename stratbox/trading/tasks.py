"""Celery tasks of trading: primitives in, the services do the work."""

from __future__ import annotations

from celery import shared_task

from stratbox.trading.services.live import live_orders_resolve


@shared_task(name="trading.live_orders_resolve", ignore_result=True)
def live_orders_resolve_task() -> int:
    """Settle live orders left `new` / `unknown` (a worker's death, an unclear send) by asking their
    venues; never resends. Idempotent: a second run finds nothing left to do."""
    return live_orders_resolve()
