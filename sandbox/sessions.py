"""Trading hours: when a market's regular session is open, as plain numbers.

A market's hours (``Market.trading_hours``) are ``{"tz": "America/New_York", "open": "09:30",
"close": "16:00", "days": [0, 1, 2, 3, 4]}``: local opening and closing times in an IANA zone
(zoneinfo, so DST moves the session in UTC), on the weekdays of ``days`` (Monday 0; all seven when
missing); a close at or before the open runs past midnight. ``{}`` is always open.

A session is the half-open interval ``[open, close)``. An order placed outside it is denied
``MARKET_CLOSED`` (with the next open in the message), a resting order does not fill outside it,
and a DAY order expires at the close of the session it was placed in — or, on an always-open
market, at the next UTC midnight (``fillmodel.day_end``).

The trusted side parses hours (:func:`session_parse`, cached per distinct hours) and asks a
:class:`Session` directly (paper trading, with the instant ``now``). The sandbox host cannot read
the time-zone database (no file opens once it is confined), so a backtest gets its session as
plain data instead: the UTC windows that cover a chunk's bars (:meth:`Session.windows_flat`),
looked up by :class:`Windows`. There a bar counts as inside when any part of it
(``[ts, ts + span)``) overlaps a session, so daily or hourly bars of a market with hours trade too.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

MARKET_CLOSED = "MARKET_CLOSED"
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ONE_DAY = timedelta(days=1)
LOOKAHEAD_DAYS = 8  # a session with at least one weekday opens within a week


class Session:
    """A parsed regular session (trusted side: it reads the time-zone database)."""

    __slots__ = ("close", "days", "label", "open", "tz")

    def __init__(self, tz: str, open_: str, close: str, days: tuple[int, ...]) -> None:
        self.tz = ZoneInfo(tz)
        self.open = time.fromisoformat(open_)
        self.close = time.fromisoformat(close)
        if not days or any(type(d) is not int or not 0 <= d <= 6 for d in days):
            raise ValueError(f"trading hours: days must be weekday numbers 0..6, got {list(days)}")
        self.days = frozenset(days)
        names = ",".join(WEEKDAY_NAMES[d] for d in sorted(self.days))
        self.label = f"{open_}-{close} {tz} {names}"

    def _window(self, day: date) -> tuple[float, float] | None:
        """The session opening on local date ``day`` as UTC unix seconds, or None."""
        if day.weekday() not in self.days:
            return None
        start = datetime.combine(day, self.open, self.tz).timestamp()
        end_day = day if self.close > self.open else day + ONE_DAY
        return start, datetime.combine(end_day, self.close, self.tz).timestamp()

    def windows(self, start: float, end: float) -> list[tuple[float, float]]:
        """The sessions that close after ``start`` and open at or before ``end``, in order."""
        day = datetime.fromtimestamp(start, self.tz).date() - ONE_DAY  # an overnight one still open
        last = datetime.fromtimestamp(end, self.tz).date()
        out = []
        while day <= last:
            w = self._window(day)
            if w is not None and w[1] > start and w[0] <= end:
                out.append(w)
            day += ONE_DAY
        return out

    def windows_flat(self, start: float, end: float) -> list[float]:
        """``windows`` from ``start`` to a week past ``end`` (so the next open after the last bar
        is known) as a flat ``[open, close, open, close, ...]`` list: what a backtest chunk gets."""
        return [x for w in self.windows(start, end + LOOKAHEAD_DAYS * 86400) for x in w]

    def window_at(self, ts: float) -> tuple[float, float] | None:
        """The session open at the instant ``ts``, or None when the market is closed."""
        for w in self.windows(ts, ts):
            if w[0] <= ts < w[1]:
                return w
        return None

    def next_open(self, ts: float) -> float | None:
        for w in self.windows(ts, ts + LOOKAHEAD_DAYS * 86400):
            if w[0] > ts:
                return w[0]
        return None

    def closed_problem(self, ts: float) -> tuple[str, str] | None:
        """``(MARKET_CLOSED, message)`` when the market is closed at ``ts``, else None."""
        if self.window_at(ts) is not None:
            return None
        return MARKET_CLOSED, closed_message(self.label, self.next_open(ts))

    def day_end(self, ts: float) -> float:
        """When a DAY order placed at ``ts`` expires: the close of the session open at ``ts`` (of
        the next one when closed: such an order is denied, a shadow one recorded as denied)."""
        w = self.window_at(ts)
        if w is not None:
            return w[1]
        upcoming = self.windows(ts, ts + LOOKAHEAD_DAYS * 86400)
        return upcoming[0][1] if upcoming else ts


def closed_message(label: str, next_open: float | None) -> str:
    if next_open is None:
        return f"the market is closed (trading hours {label}); no session in the next week"
    at = datetime.fromtimestamp(next_open, UTC).strftime("%Y-%m-%d %H:%M")
    return f"the market is closed (trading hours {label}); it opens next at {at} UTC"


@lru_cache(maxsize=1024)
def _parse(tz: str, open_: str, close: str, days: tuple[int, ...]) -> Session:
    return Session(tz, open_, close, days)


def hours_problem(hours: Any) -> str | None:
    """Why ``hours`` are not valid trading hours, or None (``{}`` is valid: always open)."""
    if not hours:
        return None
    try:
        _parse(*_key(hours))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # ZoneInfoNotFoundError is a KeyError
        return f"invalid trading hours {hours!r}: {exc}"
    return None


def _key(hours: Any) -> tuple[str, str, str, tuple[int, ...]]:
    days = hours.get("days")
    return (
        str(hours["tz"]),
        str(hours["open"]),
        str(hours["close"]),
        tuple(days) if days is not None else tuple(range(7)),
    )


def session_parse(hours: Any) -> Session | None:
    """The session of ``Market.trading_hours`` (None: always open), parsed once per distinct hours.

    Malformed hours fail closed: the market never trades (every order is denied ``MARKET_CLOSED``
    naming the problem) rather than trading as if it were always open."""
    if not hours:
        return None
    try:
        return _parse(*_key(hours))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return Unreadable(f"unreadable: {exc!r}")


class Unreadable(Session):
    """Hours that cannot be parsed: a session that never opens."""

    __slots__ = ()

    def __init__(self, problem: str) -> None:  # nothing of Session's to parse
        self.label = problem

    def windows(self, start: float, end: float) -> list[tuple[float, float]]:
        return []


class Windows:
    """A backtest's session as plain data (no time-zone database in the host): the flat
    ``[open, close, ...]`` UTC windows of a chunk and the bar length ``span``."""

    __slots__ = ("closes", "label", "opens", "span")

    def __init__(self, flat: list[float], span: float, label: str) -> None:
        self.opens = [float(x) for x in flat[0::2]]
        self.closes = [float(x) for x in flat[1::2]]
        self.span = float(span)
        self.label = label

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Windows | None:
        flat = params.get("sessions")
        if flat is None:
            return None
        return cls(flat, params.get("session_span", 0.0), str(params.get("session_label", "")))

    def close_of(self, ts: float) -> float | None:
        """The close of the session the bar at ``ts`` overlaps, or None when it overlaps none."""
        i = bisect_right(self.closes, ts)
        if i < len(self.opens):
            start = self.opens[i]
            if start < ts + self.span if self.span else start <= ts:
                return self.closes[i]
        return None

    def closed_problem(self, ts: float) -> tuple[str, str] | None:
        if self.close_of(ts) is not None:
            return None
        i = bisect_right(self.opens, ts)
        return MARKET_CLOSED, closed_message(self.label, self.opens[i] if i < len(self.opens) else None)
