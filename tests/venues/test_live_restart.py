"""A worker SIGKILLed in the middle of a live send, and a live tick end to end through the engine.

The restart scenarios commit for real: another process (`live_place_process.py`) journals and sends
the order and is killed; this process sees the committed journal, runs the resolver (or the retried
tick) and checks that the venue holds exactly one order and the ledger books it once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from stratbox.trading.models import Fill, Order
from stratbox.trading.services.live import live_orders_resolve
from stratbox.trading.services.orders import order_place
from tests.conftest import _test_database_url
from tests.venues.conftest import KEY, Live, cash
from tests.venues.test_adapters import wait_for

BASE_DIR = Path(__file__).resolve().parents[2]


def _spawn(live: Live, settings: Any, intent: dict[str, Any], **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(BASE_DIR / "tests" / "venues" / "live_place_process.py"),
            str(live.instance.pk),
            json.dumps(intent),
            json.dumps(live.quote()),
        ],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "PYTHONPATH": str(BASE_DIR),
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "STRATBOX_VENUES": json.dumps(settings.STRATBOX_VENUES),
            "STRATBOX_CREDENTIALS_KEYS": KEY,
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _intent(live: Live, seq: int) -> dict[str, Any]:
    return {
        "kind": "order",
        "client_order_id": f"{live.instance.pk}-{seq}-1",
        "side": "buy",
        "qty": float(live.unit),
        "type": "market",
        "price": None,
        "tag": None,
    }


@pytest.mark.django_db(transaction=True)
def test_workers_killed_before_and_during_a_send_leave_no_order_lost_and_none_doubled(
    live: Live, settings: Any
) -> None:
    """Two workers at once: one killed between the journal's commit and its send, one killed while
    the venue holds the answer to a send it accepted."""
    before, during = _intent(live, 7), _intent(live, 8)
    live.sim.venue.inject("timeout_after_accept", route="POST", delay=5)
    ask = live.inst.ask
    procs = [
        _spawn(live, settings, before, STRATBOX_LIVE_FAILPOINT_SLEEP_BEFORE_SEND="60"),
        _spawn(live, settings, during),
    ]
    try:
        wait_for(live.venue_orders, timeout=60)  # the venue accepted `during`; its answer is held back
        wait_for(lambda: Order.objects.filter(client_order_id=before["client_order_id"]).exists(), timeout=60)
    finally:
        for proc in procs:
            _kill(proc)
    unsent = Order.objects.get(client_order_id=before["client_order_id"])
    sent = Order.objects.get(client_order_id=during["client_order_id"])
    # Both journals were committed before any send: visible here; one claimed and sent, one never.
    assert (unsent.status, unsent.sent_at) == ("new", None)
    assert sent.status == "new" and sent.sent_at is not None
    assert len(live.venue_orders()) == 1 and live.posts() == 1

    # The resolver asks about the sent one; the unsent one, still within the grace period (its
    # worker might be about to send it), is left alone.
    assert live_orders_resolve() == 1
    sent.refresh_from_db()
    assert sent.status == "filled" and sent.filled_qty == live.unit and sent.fill_price == ask
    # The redelivered tick retries the unsent intent: the journaled order gets its one send.
    retried = order_place(
        instance=live.instance, intent=before, quote=live.quote(), mode="active", now=timezone.now()
    )
    assert retried.duplicate and retried.status == "filled" and retried.order.pk == unsent.pk
    assert live_orders_resolve(now=timezone.now() + timedelta(seconds=61)) == 0  # nothing left in doubt
    assert len(live.venue_orders()) == 2 and live.posts() == 2
    assert Fill.objects.filter(order__in=[sent, unsent]).count() == 2
    assert cash(live) == Decimal("100000") - 2 * live.unit * ask
