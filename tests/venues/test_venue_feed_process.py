"""The venue feed process: `manage.py run_venue_feed` syncs the catalogue, streams quotes into Redis
and applies the live accounts' user streams (order/fill reports) to the ledger."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.utils import timezone

from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_get
from stratbox.trading.models import Fill, Order
from stratbox.trading.services.accounts import account_create
from stratbox.trading.services.orders import order_place
from tests.conftest import BASE_DIR, _test_database_url
from tests.trading.conftest import make_instance
from tests.venues.conftest import SimVenue, approve
from tests.venues.test_adapters import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_feed_process_syncs_streams_and_stops_cleanly(
    alpaca: SimVenue, tenant: Any, user: Any, settings: Any
) -> None:
    key = Fernet.generate_key().decode()
    settings.STRATBOX_CREDENTIALS_KEYS = [key]
    account = account_create(
        tenant=tenant,
        actor=user,
        name="Alpaca",
        starting_balance=Decimal("100000"),
        kind="live",
        broker=alpaca.name,
        credentials=alpaca.credentials,
    )
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        "STRATBOX_CREDENTIALS_KEYS": key,
        "STRATBOX_VENUES": json.dumps({alpaca.name: alpaca.config}),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_venue_feed", "--account", str(account.pk), "--symbols", "AAPL"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        market = wait_for(lambda: Market.objects.filter(venue="ALPACA", symbol="AAPL").first(), timeout=60)
        alpaca.venue.set_quote("AAPL", Decimal("210.00"), Decimal("210.02"))
        wait_for(lambda: (q := quote_get(market.pk)) and q["bid"] == 210.0, timeout=60)
        # A live limit order rests at the venue; the venue fills it later: only the feed process's
        # user stream of this account can tell the ledger (no worker, no beat runs here).
        instance = make_instance(tenant, account, market, mode="active")
        approve(instance, account)
        quote = {"price": 210.01, "bid": 210.0, "ask": 210.02, "volume": 1.0, "ts": time.time()}
        intent = {"kind": "order", "client_order_id": f"{instance.pk}-1-1", "side": "buy", "qty": 2.0}
        intent.update(type="limit", price=209.0, tag=None)
        placed = order_place(instance=instance, intent=intent, quote=quote, mode="active", now=timezone.now())
        assert placed.order is not None and Order.objects.get(pk=placed.order.pk).status == "accepted"
        alpaca.venue.set_quote("AAPL", Decimal("208.98"), Decimal("209.00"))
        wait_for(lambda: Order.objects.get(pk=placed.order.pk).status == "filled", timeout=60)
        [fill] = Fill.objects.filter(order_id=placed.order.pk)
        assert (fill.qty, fill.price) == (Decimal("2"), Decimal("209.00"))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert "2 new" in out and "venue feed stopped" in out and "user streams" in out
    assert alpaca.credentials["api_secret_key"] not in out + err
