"""Backtest runs on a real Celery worker and real sandbox hosts: progress events in order over the
Channels layer, a failing strategy's code/message/line, cancellation within one chunk."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from stratbox.backtests.models import Backtest, BacktestTrade
from tests.backtests.conftest import FAILING_SOURCE, START, store_bars, wait_finished, wait_for

pytestmark = pytest.mark.worker

URL = "/api/v1/backtests/"


async def _subscribe(groups: list[str]) -> str:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def _drain(channel: str, quiet: float = 0.5) -> list[dict[str, Any]]:
    layer = get_channel_layer()
    out = []
    while True:
        try:
            out.append(await asyncio.wait_for(layer.receive(channel), quiet))
        except TimeoutError:
            return out


def test_stored_bars_run_publishes_progress_in_order(worker, api_client, tenant, sma_version, market) -> None:
    closes = [100.0 + (i % 40 if (i // 40) % 2 == 0 else 40 - i % 40) for i in range(1000)]
    store_bars(market, closes)
    channel = async_to_sync(_subscribe)([f"tenant.{tenant.pk}"])
    resp = api_client.post(
        URL,
        {
            "version": str(sma_version.pk),
            "config": {"fast": 3, "slow": 8, "qty": 1.0},
            "market": market.code,
            "start": START.isoformat(),
            "end": (START + timedelta(days=1)).isoformat(),
            "chunk_bars": 100,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    bt = wait_finished(resp.json()["id"])
    assert bt.status == "succeeded", (bt.error_code, bt.error_message)
    events = [e for e in async_to_sync(_drain)(channel) if e["backtest_id"] == str(bt.pk)]
    assert all(e["type"] == "backtest.progress" and e["total"] == 1000 for e in events)
    progress = [e for e in events if e["status"] == "running"]
    assert [e["done"] for e in progress] == [0] + list(range(100, 1001, 100))
    assert all(e["bars_per_s"] > 0 and e["eta_s"] >= 0 for e in progress[1:])
    assert events[-1]["status"] == "succeeded" and events[-1]["done"] == 1000
    assert bt.bars_done == bt.bars_total == 1000 and bt.num_trades and bt.num_trades > 5
    assert BacktestTrade.objects.filter(backtest=bt).count() >= bt.num_trades
    assert len(bt.equity_curve) == 1000 and 0 < bt.exposure < 1
    assert bt.sharpe is not None and bt.max_drawdown >= 0
    timings = bt.metrics["timings"]  # where the time went, shown by make bench-backtest
    # The host's CPU clock ticks at the scheduler's granularity (ms): ten 100-bar chunks may read 0.
    assert timings["host_cpu_s"] >= 0 and timings["worker_cpu_s"] > 0 and timings["host_loop_s"] > 0


def test_failing_strategy_fails_with_code_message_and_line(worker, api_client, failing_version) -> None:
    text = "ts,open,high,low,close,volume\n" + "".join(
        f"{1700000000 + 60 * i},10,11,9,10,1\n" for i in range(50)
    )
    upload = io.BytesIO(text.encode())
    upload.name = "flat.csv"
    resp = api_client.post(
        URL, {"version": str(failing_version.pk), "csv": upload, "chunk_bars": 20}, format="multipart"
    )
    assert resp.status_code == 201, resp.content
    bt = wait_finished(resp.json()["id"])
    assert bt.status == "failed"
    line = FAILING_SOURCE.splitlines().index("            x = 1 / 0") + 1
    body = api_client.get(f"{URL}{bt.pk}/").json()
    assert body["error"]["code"] == "RUNTIME_ERROR"
    assert body["error"]["line"] == line
    assert "ZeroDivisionError" in body["error"]["message"] or "division" in body["error"]["message"]
    assert body["results"] is None
    assert BacktestTrade.objects.filter(backtest=bt).count() == 0


def test_cancel_stops_a_running_backtest_within_one_chunk(worker, api_client, sma_version) -> None:
    n, chunk = 60_000, 200
    text = "ts,open,high,low,close,volume\n" + "".join(
        f"{1700000000 + 60 * i},{100 + i % 50},{101 + i % 50},{99 + i % 50},{100 + i % 50},1\n"
        for i in range(n)
    )
    upload = io.BytesIO(text.encode())
    upload.name = "long.csv"
    resp = api_client.post(
        URL, {"version": str(sma_version.pk), "csv": upload, "chunk_bars": chunk}, format="multipart"
    )
    assert resp.status_code == 201, resp.content
    bt_id = resp.json()["id"]
    wait_for(lambda: Backtest.objects.get(pk=bt_id).bars_done >= 2 * chunk, interval=0.01)
    resp = api_client.post(f"{URL}{bt_id}/cancel/")
    assert resp.status_code == 202 and resp.json()["progress"]["cancel_requested"] is True
    done_at_cancel = Backtest.objects.get(pk=bt_id).bars_done
    bt = wait_finished(bt_id)
    assert bt.status == "cancelled"
    # the chunk in flight may finish (its progress may not have been written yet); no further chunk starts
    assert bt.bars_done <= done_at_cancel + 2 * chunk < n
    assert bt.num_trades is None and BacktestTrade.objects.filter(backtest=bt).count() == 0
