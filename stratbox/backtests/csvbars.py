"""Parse and validate an uploaded OHLCV CSV into float columns (ts, open, high, low, close, volume).

The header names the columns, case-insensitively and in any order, as backtesting.py, yfinance,
pandas and exchanges export them: the time under ``ts``, ``timestamp``, ``date``, ``datetime``,
``time`` or ``open time`` -- or in a leading unnamed index column (pandas' ``to_csv`` of a
DatetimeIndex, as backtesting.py's sample data); ``open``, ``high``, ``low``, ``close`` required,
``volume`` optional (0 when absent); other columns (``Adj Close``, a numeric pandas index, ...)
are ignored. Times are epoch seconds, epoch milliseconds (values above 10^11, as exchanges
export) or ISO 8601 dates/datetimes (a naive time is UTC); they must strictly increase.

Every bad row is reported with its 1-based line number (the header is line 1) and the reason, so
the user can fix the file in one go. A well-formed file takes the fast path (one pass of the csv
module, then numpy converts and checks whole columns); only a file with a bad row is walked row
by row to name them. Pure Python + numpy (no Django).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
MAX_ERRORS = 50  # listing more helps nobody; the count says how many there were
MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CsvInvalid(ValueError):
    def __init__(self, errors: list[RowError], total: int | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        super().__init__("; ".join(str(e) for e in errors[:5]))


@dataclass
class BarColumns:
    """One float64 array per column, all the same length, ts in epoch seconds."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.size)

    def pack(self) -> bytes:
        """Compact storage form (zlib over the six float64 columns, column after column)."""
        stacked = np.stack([self.ts, self.open, self.high, self.low, self.close, self.volume])
        return zlib.compress(stacked.astype("<f8").tobytes(), 1)

    @classmethod
    def unpack(cls, blob: bytes) -> BarColumns:
        flat = np.frombuffer(zlib.decompress(blob), dtype="<f8").reshape(6, -1)
        return cls(*(flat[i].copy() for i in range(6)))

    @classmethod
    def concat(cls, parts: list[BarColumns]) -> BarColumns:
        if not parts:
            return cls(*(np.empty(0, dtype=np.float64) for _ in COLUMNS))
        return cls(*(np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS))

    def slice(self, lo: int, hi: int) -> BarColumns:
        return BarColumns(*(getattr(self, c)[lo:hi] for c in COLUMNS))


_TIME_NAMES = ("ts", "timestamp", "datetime", "date", "time", "open time", "open_time", "date time")
_PRICE_NAMES = ("open", "high", "low", "close")
MS_THRESHOLD = 1e11  # epoch seconds reach 10^11 in the year 5138: larger values are milliseconds


def _header_map(header: list[str]) -> tuple[list[int | None], int]:
    """Column index of ts, open, high, low, close, volume (volume may be None) and the row width."""
    names = [h.strip().lower() for h in header]
    where: dict[str, int] = {}
    for i, name in enumerate(names):
        where.setdefault(name, i)
    ts_idx = next((where[n] for n in _TIME_NAMES if n in where), None)
    if ts_idx is None and names and names[0] in ("", "index", "unnamed: 0"):
        ts_idx = 0  # pandas' to_csv of a DatetimeIndex: the unnamed first column holds the time
    missing = [n for n in _PRICE_NAMES if n not in where]
    if ts_idx is None or missing:
        what = ", ".join(
            (["a time column (ts, timestamp, date or datetime)"] if ts_idx is None else []) + missing
        )
        raise CsvInvalid(
            [
                RowError(
                    1,
                    f"header must name {what} (got {','.join(header)[:120]}); columns are ts,open,high,low,close[,volume]",
                )
            ]
        )
    return [ts_idx, *(where[n] for n in _PRICE_NAMES), where.get("volume")], len(names)


def _parse_ts(raw: str) -> float:
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"ts {raw[:40]!r} is neither epoch seconds nor ISO 8601") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"ts {raw[:40]!r} is not a valid epoch time")
    return value / 1000.0 if value > MS_THRESHOLD else value


def _parse_num(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} {raw.strip()[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} is not finite")
    return value


def parse_bars_csv(data: bytes | str) -> BarColumns:
    """Parse a whole CSV or raise :class:`CsvInvalid` listing the bad rows."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CsvInvalid([RowError(1, "the file is not UTF-8 text")]) from None
    else:
        text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise CsvInvalid([RowError(1, "the file is empty")])
        index, width = _header_map(header)
        first = next(reader, None)
        while first is not None and not any(c.strip() for c in first):
            first = next(reader, None)
        if first is None:
            raise CsvInvalid([RowError(2, "no bars after the header")])
        fast = _parse_fast(text, index, width, first) if len(first) == width else None
        if fast is not None:
            return fast
        reader = csv.reader(io.StringIO(text))
        next(reader)
        return _parse_rows(reader, index, width)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): a clear 400, not a 500
        raise CsvInvalid([RowError(reader.line_num or 1, f"unreadable CSV: {exc}")]) from None


def _parse_fast(text: str, index: list[int | None], width: int, first: list[str]) -> BarColumns | None:
    """numpy's C reader over the whole file, then whole-column checks; None when any row is not
    clean (the slow path then names the bad rows)."""
    ts_i = index[0]
    assert ts_i is not None
    raw_ts = first[ts_i].strip()
    try:
        float(raw_ts)
        ts_kind = "f8"
    except ValueError:
        # numpy ignores a UTC offset or "Z": such times are parsed per row, the rest in C.
        ts_kind = "U40" if any(ch in raw_ts[19:] for ch in "+-Z") else "datetime64[us]"
    cols = [i for i in index if i is not None]
    fields = [("ts", ts_kind), *((n, "f8") for n in COLUMNS[1 : len(cols)])]
    body = text.split("\n", 1)[1] if "\n" in text else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = np.loadtxt(
                io.StringIO(body),
                delimiter=",",
                quotechar='"',
                comments=None,
                usecols=cols,
                dtype=np.dtype(fields),
                ndmin=1,
                max_rows=MAX_ROWS + 1,
            )
    except (ValueError, TypeError, OverflowError):
        return None
    if table.size > MAX_ROWS:
        raise CsvInvalid([RowError(MAX_ROWS + 2, f"more than {MAX_ROWS} rows")])
    if ts_kind == "f8":
        ts = table["ts"].astype(np.float64)
        ts = np.where(ts > MS_THRESHOLD, ts / 1000.0, ts)
    elif ts_kind == "U40":
        try:
            ts = np.array([_parse_ts(v) for v in table["ts"].tolist()], dtype=np.float64)
        except ValueError:
            return None
    else:
        stamps = table["ts"]
        if np.isnat(stamps).any():
            return None
        ts = stamps.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
    o, h, lo, c = (np.ascontiguousarray(table[n], dtype=np.float64) for n in COLUMNS[1:5])
    volume = (
        np.ascontiguousarray(table["volume"], dtype=np.float64) if index[5] is not None else np.zeros(len(ts))
    )
    if not all(np.isfinite(a).all() for a in (ts, o, h, lo, c, volume)):
        return None
    ok = (
        (np.minimum(np.minimum(o, h), np.minimum(lo, c)) > 0).all()
        and (h >= np.maximum(np.maximum(o, c), lo)).all()
        and (lo <= np.minimum(o, c)).all()
        and (volume >= 0).all()
        and (ts >= 0).all()
        and (ts[1:] > ts[:-1]).all()
    )
    return BarColumns(ts, o, h, lo, c, volume) if ok else None


def _parse_rows(reader: Any, index: list[int | None], width: int) -> BarColumns:
    errors: list[RowError] = []
    total_errors = 0
    cols: list[list[float]] = [[] for _ in COLUMNS]
    prev_ts: float | None = None
    ts_i, o_i, h_i, l_i, c_i, v_i = index
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue  # blank lines are harmless
        reason = None
        if len(row) != width:
            reason = f"expected {width} columns, got {len(row)}"
        else:
            try:
                ts = _parse_ts(row[ts_i])  # type: ignore[index]
                o, h, lo, c = (
                    _parse_num(n, row[i])  # type: ignore[index]
                    for n, i in zip(_PRICE_NAMES, (o_i, h_i, l_i, c_i), strict=True)
                )
                vol = _parse_num("volume", row[v_i]) if v_i is not None else 0.0
                if min(o, h, lo, c) <= 0:
                    reason = "prices must be > 0"
                elif h < max(o, c, lo):
                    reason = "high is below open, close or low"
                elif lo > min(o, c):
                    reason = "low is above open or close"
                elif vol < 0:
                    reason = "volume must be >= 0"
                elif prev_ts is not None and ts <= prev_ts:
                    reason = "ts must be later than the previous row's"
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            total_errors += 1
            if len(errors) < MAX_ERRORS:
                errors.append(RowError(line, reason))
            continue
        prev_ts = ts
        for dest, value in zip(cols, (ts, o, h, lo, c, vol), strict=True):
            dest.append(value)
        if len(cols[0]) > MAX_ROWS:
            raise CsvInvalid([RowError(line, f"more than {MAX_ROWS} rows")])
    if errors:
        raise CsvInvalid(errors, total_errors)
    if not cols[0]:
        raise CsvInvalid([RowError(2, "no bars after the header")])
    return BarColumns(*(np.asarray(c, dtype=np.float64) for c in cols))
