"""Quotes in Redis, the seeded simulated walk, the replay feed and `run_feed`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command

from stratbox.markets.feeds import FeedRegistry, ReplayFeed, SimulatedFeed, feed_step
from stratbox.markets.models import Bar, Market
from stratbox.markets.quotes import quote_get, quote_set, quotes_get_many


def test_quotes_round_trip_and_many_in_one_call(market):
    quote = {"market": market.code, "price": 101.5, "bid": 101.4, "ask": 101.6, "volume": 3.0, "ts": 1.0}
    quote_set(market.pk, quote)
    assert quote_get(market.pk) == quote
    assert quotes_get_many([market.pk, 999999]) == {market.pk: quote}
    with pytest.raises(ValueError):
        quote_set(market.pk, {**quote, "price": float("nan")})
    assert quote_get(market.pk) == quote


def test_simulated_walk_is_deterministic_per_seed_and_uses_volatility(market):
    a = [SimulatedFeed(market, 7).next_quote(float(t)) for t in range(1)]
    feed1, feed2, feed3 = SimulatedFeed(market, 7), SimulatedFeed(market, 7), SimulatedFeed(market, 8)
    path1 = [feed1.next_quote(float(t))["price"] for t in range(50)]
    path2 = [feed2.next_quote(float(t))["price"] for t in range(50)]
    path3 = [feed3.next_quote(float(t))["price"] for t in range(50)]
    assert path1 == path2 and path1 != path3 and a[0]["price"] == path1[0]
    q = feed1.next_quote(51.0)
    assert q["bid"] < q["ask"] and q["market"] == "SIM:BTC/USDT"

    calm = Market.objects.create(venue="SIM", symbol="CALM", sim_volatility=0.0, sim_start_price=D("50"))
    assert {SimulatedFeed(calm, 1).next_quote(0.0)["price"] for _ in range(5)} == {50.0}
    wild = Market.objects.create(venue="SIM", symbol="WILD", sim_volatility=0.05, sim_start_price=D("50"))
    wild_feed = SimulatedFeed(wild, 1)
    assert len({wild_feed.next_quote(float(t))["price"] for t in range(20)}) > 10


def test_feed_step_stores_a_quote_per_active_market(market):
    inactive = Market.objects.create(venue="SIM", symbol="OFF", active=False)
    quotes = feed_step(1000.0, registry=FeedRegistry(seed=3))
    assert [q["market"] for q in quotes] == [market.code]
    assert quote_get(market.pk)["ts"] == 1000.0 and quote_get(inactive.pk) is None
    # A fresh feed process continues the walk from the last stored price, not the start price.
    quote_set(market.pk, {**quote_get(market.pk), "price": 5000.0, "bid": 4999.0, "ask": 5001.0})
    again = feed_step(1001.0, registry=FeedRegistry(seed=3))
    assert quote_get(market.pk)["ts"] == 1001.0 and again[0]["price"] > 4000


def test_replay_feed_steps_through_stored_bars_and_loops(market):
    market.feed = "replay"
    market.save()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, close in enumerate([10, 11, 12]):
        Bar.objects.create(
            market=market, ts=start + timedelta(minutes=n), open=close, high=close, low=close, close=close
        )
    registry = FeedRegistry()
    prices = [feed_step(float(t), registry=registry)[0]["price"] for t in range(4)]
    assert prices == [10.0, 11.0, 12.0, 10.0]
    assert quote_get(market.pk)["close"] == 10.0
    # The cursor lives in Redis: a new registry (a restarted feed) resumes at bar 2.
    assert feed_step(5.0, registry=FeedRegistry())[0]["price"] == 11.0
    assert ReplayFeed(market, []).next_quote(1.0) is None


def test_run_feed_once(market, capsys):
    call_command("run_feed", "--once", "--seed", "1")
    assert "published 1 quote(s)" in capsys.readouterr().out
    assert quote_get(market.pk) is not None


@pytest.mark.django_db(transaction=True)
def test_run_feed_loops_and_exits_cleanly_on_sigterm(market):
    from django.conf import settings
    from django.db import connection

    s = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_feed", "--interval", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while quote_get(market.pk) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first = quote_get(market.pk)
        assert first is not None
        while quote_get(market.pk)["ts"] == first["ts"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert quote_get(market.pk)["ts"] > first["ts"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
        assert b"feed stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
