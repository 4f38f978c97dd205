"""Parse and validate an uploaded OHLCV CSV (ts,open,high,low,close,volume) into float columns.

Every bad row is reported with its 1-based line number (the header is line 1) and the reason,
so the user can fix the file in one go. ``ts`` is epoch seconds or ISO 8601 (a naive time is
UTC); timestamps must strictly increase. Parsing is pure Python + numpy (no Django).
"""

from __future__ import annotations

import csv
import io
import math
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
    return value


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
        text = data
    reader = csv.reader(io.StringIO(text))
    try:
        return _parse_rows(reader)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): a clear 400, not a 500
        raise CsvInvalid([RowError(reader.line_num or 1, f"unreadable CSV: {exc}")]) from None


def _parse_rows(reader: Any) -> BarColumns:
    errors: list[RowError] = []
    total_errors = 0
    header = next(reader, None)
    if header is None:
        raise CsvInvalid([RowError(1, "the file is empty")])
    names = [h.strip().lower() for h in header]
    if tuple(names) != COLUMNS:
        raise CsvInvalid([RowError(1, f"header must be {','.join(COLUMNS)} (got {','.join(names)[:120]})")])
    cols: list[list[float]] = [[] for _ in COLUMNS]
    prev_ts: float | None = None
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue  # blank lines are harmless
        reason = None
        if len(row) != 6:
            reason = f"expected 6 columns, got {len(row)}"
        else:
            try:
                ts = _parse_ts(row[0])
                o, h, lo, c = (_parse_num(n, v) for n, v in zip(COLUMNS[1:5], row[1:5], strict=True))
                vol = _parse_num("volume", row[5])
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
