"""Loading a backtest's bars as float columns: stored market bars or the uploaded CSV.

Stored bars are read with one binary ``COPY ... TO STDOUT`` decoded by numpy: a million bars load
in a fraction of a second, where the ORM (a model and six Decimals per row) would take many.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection

from stratbox.backtests.csvbars import BarColumns
from stratbox.markets.models import Bar

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
# Each binary COPY tuple: int16 field count, then (int32 length, value) per field. ts is sent as
# the raw timestamptz (int64 microseconds since 2000-01-01: no server-side epoch conversion), the
# prices as float8. The columns are NOT NULL, so every tuple has this fixed size.
_ROW = np.dtype(
    [("n", ">i2"), ("lts", ">i4"), ("ts", ">i8")]
    + [item for c in range(5) for item in ((f"l{c}", ">i4"), (f"v{c}", ">f8"))]
)
_PG_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z in Unix seconds


def market_bars_count(*, market_id: int, interval_seconds: int, start: datetime, end: datetime) -> int:
    return Bar.objects.filter(
        market_id=market_id, interval_seconds=interval_seconds, ts__gte=start, ts__lt=end
    ).count()


def market_bars_load(*, market_id: int, interval_seconds: int, start: datetime, end: datetime) -> BarColumns:
    """Bars of a market in [start, end), ordered by time, as float64 columns (ts in epoch seconds)."""
    table = Bar._meta.db_table
    # The table name comes from the model; every value is bound.
    sql = (
        "COPY (SELECT ts, open::float8, high::float8, low::float8, close::float8, volume::float8 "  # noqa: S608
        f'FROM "{table}" WHERE market_id = %s AND interval_seconds = %s AND ts >= %s AND ts < %s '
        "ORDER BY ts) TO STDOUT (FORMAT BINARY)"
    )
    buf = bytearray()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg 3 cursor: COPY is not part of the DB-API
        with raw.copy(sql, (market_id, interval_seconds, start, end)) as copy:
            while block := copy.read():
                buf += block
    return _decode_binary_copy(bytes(buf))


def _decode_binary_copy(data: bytes) -> BarColumns:
    if not data.startswith(_COPY_SIGNATURE):
        raise ValueError("unexpected COPY output")
    ext_len = int.from_bytes(data[15:19], "big")
    body = memoryview(data)[19 + ext_len : len(data) - 2]  # the trailer is int16 -1
    if len(body) % _ROW.itemsize:
        raise ValueError("unexpected COPY tuple size")
    return _decode_rows(bytes(body))


def market_bars_chunks(
    *, market_id: int, interval_seconds: int, start: datetime, end: datetime, chunk: int
) -> Iterator[BarColumns]:
    """The same bars as :func:`market_bars_load`, decoded and yielded ``chunk`` bars at a time while
    PostgreSQL is still sending the rest (the runner overlaps this with the sandbox host's work)."""
    table = Bar._meta.db_table
    sql = (
        "COPY (SELECT ts, open::float8, high::float8, low::float8, close::float8, volume::float8 "  # noqa: S608
        f'FROM "{table}" WHERE market_id = %s AND interval_seconds = %s AND ts >= %s AND ts < %s '
        "ORDER BY ts) TO STDOUT (FORMAT BINARY)"
    )
    size = chunk * _ROW.itemsize
    buf = bytearray()
    header_done = False
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql, (market_id, interval_seconds, start, end)) as copy:
            for block in _copy_out(copy, cursor.cursor.connection.pgconn):
                buf += block
                if not header_done and len(buf) >= 19:
                    if not buf.startswith(_COPY_SIGNATURE):
                        raise ValueError("unexpected COPY output")
                    skip = 19 + int.from_bytes(buf[15:19], "big")
                    if len(buf) < skip:
                        continue
                    del buf[:skip]
                    header_done = True
                while header_done and len(buf) >= size:
                    yield _decode_rows(bytes(buf[:size]))
                    del buf[:size]
    if not header_done:
        raise ValueError("unexpected COPY output")
    rest = bytes(buf[:-2])  # the trailer is int16 -1
    if rest:
        yield _decode_rows(rest)


def _copy_out(copy: Any, pgconn: Any, drain: int = 4096) -> Iterator[bytes]:
    """A binary COPY's output in blocks of many rows.

    PostgreSQL sends one CopyData message per row, and ``Copy.read`` returns one message per call
    through psycopg's wait machinery: a million calls cost most of a CPU second. After each such
    read, the rows libpq already holds are taken straight from the connection (``PGconn``, the
    documented low-level escape hatch) without waiting. Draining stops at a message shorter than a
    row -- the file trailer (alone, or after the header when there are no rows), which comes last
    -- so the end of the copy and its final result are still read by ``Copy.read``.
    """
    row = _ROW.itemsize
    while block := copy.read():
        if len(block) < row:
            yield bytes(block)
            continue
        out = bytearray(block)
        for _ in range(drain):
            nbytes, data = pgconn.get_copy_data(1)  # 1: never block; 0 when nothing is buffered
            if nbytes <= 0:
                # 0: nothing buffered. -1 cannot come before the trailer, which stops us below.
                break
            out += data
            if nbytes < row:
                break
        yield bytes(out)


def _decode_rows(body: bytes) -> BarColumns:
    if len(body) % _ROW.itemsize:
        raise ValueError("unexpected COPY tuple size")
    rows = np.frombuffer(body, dtype=_ROW)
    ts = rows["ts"].astype(np.float64) / 1e6 + _PG_EPOCH
    return BarColumns(ts, *(rows[f"v{c}"].astype(np.float64) for c in range(5)))
