"""Trading hours in the backtester's broker, with times worked out by hand.

The session is US equities' (09:30-16:00 America/New_York, Monday to Friday). New York moved to
daylight time on Sunday 2026-03-08: Friday 2026-03-06 trades 14:30-21:00 UTC (EST, UTC-5),
Monday 2026-03-09 trades 13:30-20:00 UTC (EDT, UTC-4). The broker gets the session as plain
windows, exactly as the backtest runner sends them (``Session.windows_flat``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox.sessions import Session, hours_problem, session_parse
from sandbox.simbroker import SimBroker

NY = {"tz": "America/New_York", "open": "09:30", "close": "16:00", "days": [0, 1, 2, 3, 4]}


def ts(day: int, hh: int, mm: int = 0) -> float:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC).timestamp()


def ny() -> Session:
    session = session_parse(NY)
    assert session is not None
    return session


def broker(span: float = 60.0, **params: object) -> SimBroker:
    base: dict[str, object] = {
        "starting_balance": 10_000.0,
        "sessions": ny().windows_flat(ts(5, 0), ts(10, 0)),
        "session_span": span,
        "session_label": ny().label,
    }
    base.update(params)
    return SimBroker(base)


def test_the_session_follows_new_york_across_the_dst_change() -> None:
    s = ny()
    assert s.window_at(ts(6, 14, 30)) == (ts(6, 14, 30), ts(6, 21))  # Friday, EST
    assert s.window_at(ts(9, 13, 30)) == (ts(9, 13, 30), ts(9, 20))  # Monday, EDT
    assert s.window_at(ts(6, 14, 29)) is None and s.window_at(ts(6, 21)) is None  # [open, close)
    assert s.window_at(ts(7, 15)) is None  # Saturday
    assert s.next_open(ts(6, 21)) == ts(9, 13, 30)
    assert session_parse({}) is None and session_parse(dict(NY)) is s  # parsed once per hours
    # Hours that cannot be read fail closed: the market never opens (and says why).
    broken = session_parse({"tz": "Nowhere/Atlantis", "open": "09:30", "close": "16:00"})
    assert broken is not None and broken.window_at(ts(9, 15)) is None
    code, message = broken.closed_problem(ts(9, 15)) or ("", "")
    assert code == "MARKET_CLOSED" and "Nowhere/Atlantis" in message and broken.windows_flat(0, 1) == []
    assert hours_problem({"tz": "UTC", "open": "25:00", "close": "16:00"}) is not None
    assert hours_problem(NY) is None and hours_problem({}) is None


@pytest.mark.parametrize(
    ("at", "next_open"),
    [
        (ts(6, 14, 29), "2026-03-06 14:30 UTC"),  # a minute before Friday's open (09:29 EST)
        (ts(6, 21), "2026-03-09 13:30 UTC"),  # Friday's close (16:00 EST): Monday, now EDT
        (ts(7, 15), "2026-03-09 13:30 UTC"),  # Saturday
        (ts(9, 13, 29), "2026-03-09 13:30 UTC"),  # Monday 09:29 EDT (would be open at UTC-5)
    ],
)
def test_an_order_outside_the_session_is_denied_market_closed(at: float, next_open: str) -> None:
    b = broker(span=0.0)
    order = b.new_order(side="buy", qty=1, ts=at, price=100.0)
    assert (order["status"], order["reason"]) == ("rejected", "MARKET_CLOSED")
    assert b.denials[0]["code"] == "MARKET_CLOSED" and next_open in b.denials[0]["message"]
    assert b.qty == 0 and b.denial_counts == {"MARKET_CLOSED": 1}


@pytest.mark.parametrize("at", [ts(6, 14, 30), ts(6, 20, 59), ts(9, 13, 30), ts(9, 19, 59)])
def test_an_order_inside_the_session_fills(at: float) -> None:
    b = broker()
    order = b.new_order(side="buy", qty=1, ts=at, price=100.0)
    assert (order["status"], order["fill_price"], b.qty) == ("filled", 100.0, 1.0)


def test_a_resting_limit_does_not_fill_outside_the_session() -> None:
    b = broker()
    limit = b.new_order(side="buy", qty=2, type="limit", limit=90.0, ts=ts(6, 20), price=100.0)
    ioc_at_open = b.new_order(
        side="buy", qty=1, type="limit", limit=90.0, tif="ioc", ts=ts(6, 20, 59), price=100.0
    )
    assert ioc_at_open["status"] == "cancelled"  # IOC at the signal close: not marketable
    b.on_bar(ts(6, 21), 89.0, 89.0, 88.0, 89.0)  # Friday 16:00 EST: closed, the bar touches 90
    b.on_bar(ts(7, 15), 85.0, 86.0, 84.0, 85.0)  # Saturday
    assert (limit["status"], b.qty) == ("accepted", 0.0)
    b.on_bar(ts(9, 13, 30), 91.0, 92.0, 89.5, 91.0)  # Monday's open, EDT: the low touches 90
    assert (limit["status"], limit["fill_price"], b.qty) == ("filled", 90.0, 2.0)


def test_a_day_order_expires_at_the_session_close_not_utc_midnight() -> None:
    b = broker()
    friday = b.new_order(side="buy", qty=1, type="limit", limit=90.0, tif="day", ts=ts(6, 15), price=100.0)
    monday = b.new_order(side="buy", qty=1, type="limit", limit=80.0, tif="day", ts=ts(9, 15), price=100.0)
    assert friday["expire_at"] == ts(6, 21)  # 16:00 EST
    assert monday["expire_at"] == ts(9, 20)  # 16:00 EDT
    b.on_bar(ts(6, 20, 59), 95.0, 95.0, 95.0, 95.0)
    assert friday["status"] == "accepted"
    b.on_bar(ts(9, 20), 79.0, 79.0, 79.0, 79.0)
    assert (friday["status"], monday["status"], b.qty) == ("expired", "expired", 0.0)


def test_daily_bars_trade_on_session_days() -> None:
    """A daily bar stamped at 00:00 UTC overlaps that day's session: it trades; Saturday's does not."""
    b = broker(span=86400.0)
    assert b.new_order(side="buy", qty=1, ts=ts(6, 0), price=100.0)["status"] == "filled"
    assert b.new_order(side="buy", qty=1, ts=ts(7, 0), price=100.0)["reason"] == "MARKET_CLOSED"


def test_an_always_open_market_is_unchanged() -> None:
    b = SimBroker({"starting_balance": 10_000.0})  # trading_hours {}: no session data at all
    assert b.sessions is None
    saturday = b.new_order(side="buy", qty=1, type="limit", limit=90.0, tif="day", ts=ts(7, 15), price=100.0)
    assert saturday["status"] == "accepted"
    assert saturday["expire_at"] == ts(8, 0)  # the next UTC midnight
    b.on_bar(ts(7, 23, 59), 89.0, 89.0, 89.0, 89.0)
    assert (saturday["status"], b.qty) == ("filled", 1.0)
