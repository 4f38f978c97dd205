"""Backtest progress events over the Channels layer (this module owns the group names and payload).

Groups: ``backtest.<uuid>`` (one run's page) and ``tenant.<uuid>`` (the tenant's dashboard).
Payload: ``{"type": "backtest.progress", "backtest_id", "done", "total", "bars_per_s", "eta_s",
"status"}`` — consumers forward it as-is. Sending never blocks a worker for long: a full channel
or an unreachable layer drops the event (counted), it never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from stratbox.backtests.models import Backtest

logger = logging.getLogger(__name__)
dropped_events = 0


def backtest_group(backtest_id: Any) -> str:
    return f"backtest.{backtest_id}"


def tenant_group(tenant_id: Any) -> str:
    return f"tenant.{tenant_id}"


def progress_payload(bt: Backtest) -> dict[str, Any]:
    return {
        "type": "backtest.progress",
        "backtest_id": str(bt.pk),
        "done": bt.bars_done,
        "total": bt.bars_total,
        "bars_per_s": bt.bars_per_s,
        "eta_s": bt.eta_s,
        "status": bt.status,
    }


def progress_publish(bt: Backtest) -> None:
    global dropped_events
    layer = get_channel_layer()
    if layer is None:
        return
    payload = progress_payload(bt)
    send = async_to_sync(layer.group_send)
    for group in (backtest_group(bt.pk), tenant_group(bt.tenant_id)):
        try:
            send(group, payload)
        except Exception as exc:  # ChannelFull or the layer is down: progress is advisory, the run goes on
            dropped_events += 1
            logger.warning("backtest progress event to %s dropped: %s", group, exc)
