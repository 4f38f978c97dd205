"""Writes for markets: importing OHLCV bars from CSV with per-row validation.

Policy: by default the import is all-or-nothing — every bad row is reported with its line number
and reason, and nothing is stored if any row is bad. With `skip_bad=True` the good rows are stored
and the bad ones reported. A row is bad when a value does not parse, a price is not a positive
finite number, volume is negative, high < max(open, close), low > min(open, close), high < low,
its ts is not strictly after the previous good row's, or a bar with that ts is already stored.
"""

from __future__ import annotations

import csv
import io
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TextIO

from django.db import transaction

from stratbox.markets.models import Bar, Market

REQUIRED_COLUMNS = ("ts", "open", "high", "low", "close")
OPTIONAL_COLUMNS = ("volume",)
# Epoch values above this are milliseconds (10^11 s is the year 5138).
_EPOCH_MS_THRESHOLD = 10**11
MAX_PRICE = Decimal("1e12")


class BarImportError(Exception):
    """The file cannot be imported at all (bad header, unknown market)."""


@dataclass
class BarImportResult:
    imported: int = 0
    rows: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)

    @property
    def ok(self) -> bool:
        return not self.errors


def market_get_by_code(code: str) -> Market | None:
    venue, sep, symbol = code.partition(":")
    if not sep:
        return None
    return Market.objects.filter(venue=venue, symbol=symbol).first()


def parse_ts(raw: str) -> datetime:
    raw = raw.strip()
    if not raw:
        raise ValueError("ts is empty")
    try:
        number = float(raw)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"ts {raw!r} is not a valid epoch")
        if number >= _EPOCH_MS_THRESHOLD:
            number /= 1000
        try:
            return datetime.fromtimestamp(number, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"ts {raw!r} is out of range") from exc
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"ts {raw!r} is neither ISO 8601 nor an epoch") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decimal(row: dict[str, str], column: str, *, allow_zero: bool = False) -> Decimal:
    raw = (row.get(column) or "").strip()
    if not raw:
        raise ValueError(f"{column} is empty")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ValueError(f"{column} {raw!r} is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"{column} {raw!r} is not finite")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{column} {raw!r} must be {'>= 0' if allow_zero else 'positive'}")
    if value >= MAX_PRICE:
        raise ValueError(f"{column} {raw!r} is too large")
    return value


def bars_import(
    *, market: Market, stream: TextIO, interval_seconds: int = 60, skip_bad: bool = False
) -> BarImportResult:
    """Validate every row of a ts,open,high,low,close[,volume] CSV and store the bars."""
    reader = csv.DictReader(stream)
    try:
        return _bars_import_rows(reader, market=market, interval_seconds=interval_seconds, skip_bad=skip_bad)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): a clear 400, not a 500
        raise BarImportError(f"line {reader.line_num or 1}: unreadable CSV: {exc}") from None


def _bars_import_rows(
    reader: csv.DictReader[str], *, market: Market, interval_seconds: int, skip_bad: bool
) -> BarImportResult:
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise BarImportError(
            f"missing column(s): {', '.join(missing)} (expected ts,open,high,low,close,volume)"
        )
    reader.fieldnames = header
    existing = set(
        Bar.objects.filter(market=market, interval_seconds=interval_seconds).values_list("ts", flat=True)
    )
    result = BarImportResult()
    bars: list[Bar] = []
    seen: dict[datetime, int] = {}
    last_ts: datetime | None = None
    for row in reader:
        line = reader.line_num
        result.rows += 1
        try:
            if None in row:
                raise ValueError("too many columns")
            ts = parse_ts(row.get("ts") or "")
            o, h, low, c = (_decimal(row, k) for k in ("open", "high", "low", "close"))
            volume = (
                _decimal(row, "volume", allow_zero=True) if (row.get("volume") or "").strip() else Decimal(0)
            )
            if h < max(o, c):
                raise ValueError(f"high {h} is below max(open, close) {max(o, c)}")
            if low > min(o, c):
                raise ValueError(f"low {low} is above min(open, close) {min(o, c)}")
            if ts in seen:
                raise ValueError(f"duplicate ts {ts.isoformat()} (first on line {seen[ts]})")
            if ts in existing:
                raise ValueError(f"a bar at {ts.isoformat()} is already stored for {market.code}")
            if last_ts is not None and ts <= last_ts:
                raise ValueError(f"ts {ts.isoformat()} is not after the previous row's {last_ts.isoformat()}")
        except ValueError as exc:
            result.errors.append((line, str(exc)))
            continue
        seen[ts] = line
        last_ts = ts
        bars.append(
            Bar(
                market=market,
                ts=ts,
                interval_seconds=interval_seconds,
                open=o,
                high=h,
                low=low,
                close=c,
                volume=volume,
            )
        )
    if result.errors and not skip_bad:
        return result
    with transaction.atomic():
        Bar.objects.bulk_create(bars, batch_size=2000)
    result.imported = len(bars)
    return result


def bars_import_text(*, market: Market, text: str, **kwargs: object) -> BarImportResult:
    return bars_import(market=market, stream=io.StringIO(text), **kwargs)  # type: ignore[arg-type]


def bars_simulate(
    *, market: Market, count: int, interval_seconds: int = 60, end: datetime | None = None, seed: int = 0
) -> int:
    """Store `count` bars of a seeded random walk ending at `end`, so a new platform can backtest at once.

    Idempotent: a market that already has bars of this interval is left alone (returns 0).
    Each bar's close follows the market's simulated volatility; open is the previous close and
    high/low wrap both with a small random excursion, so every bar is a valid OHLC bar.
    """
    if Bar.objects.filter(market=market, interval_seconds=interval_seconds).exists():
        return 0
    rng = random.Random(f"{seed}:{market.code}:{interval_seconds}")
    end_ts = math.floor((end or datetime.now(tz=UTC)).timestamp() / interval_seconds) * interval_seconds
    sigma = float(market.sim_volatility) * math.sqrt(max(interval_seconds, 1))
    tick = market.tick_size if market.tick_size > 0 else Decimal("0.01")
    close = float(market.sim_start_price)
    bars: list[Bar] = []
    for i in range(count):
        ts = end_ts - (count - 1 - i) * interval_seconds
        open_ = close
        close = open_ * math.exp(rng.gauss(0.0, sigma))
        high = max(open_, close) * (1 + abs(rng.gauss(0.0, sigma / 2)))
        low = min(open_, close) * (1 - abs(rng.gauss(0.0, sigma / 2)))

        def q(x: float) -> Decimal:
            return (Decimal(repr(x)) / tick).to_integral_value() * tick

        o, h, lo, c = q(open_), q(high), q(low), q(close)
        bars.append(
            Bar(
                market=market,
                ts=datetime.fromtimestamp(ts, tz=UTC),
                interval_seconds=interval_seconds,
                open=o,
                high=max(h, o, c),
                low=min(lo, o, c),
                close=c,
                volume=Decimal(rng.randint(1, 1000)),
            )
        )
    with transaction.atomic():
        Bar.objects.bulk_create(bars, batch_size=5000)
    return len(bars)
