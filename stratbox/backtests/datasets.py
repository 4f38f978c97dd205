"""Bar datasets: a tenant's imported CSVs, stored once and reused by later backtests.

An import parses the file (:mod:`stratbox.backtests.csvbars`, every bad line named) and
bulk-loads the bars with one binary ``COPY ... FROM STDIN``: the tuples are built by numpy in
PostgreSQL's binary format, so a million bars cost a few array operations and one stream, not a
million INSERTs (nor a million Python objects). The same file (sha256) imported again by the same
tenant returns the stored dataset. A run reads its bars back with one binary ``COPY ... TO
STDOUT``, decoded by numpy a chunk at a time.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction

from stratbox.backtests.bars import _COPY_SIGNATURE, copy_out_chunks
from stratbox.backtests.csvbars import COLUMNS, BarColumns, CsvInvalid, parse_bars_csv
from stratbox.backtests.models import BarDataset, DatasetBar
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record

COPY_BLOCK_ROWS = 100_000  # rows per write to the COPY stream (bounds the memory of one block)

# One binary COPY tuple of DatasetBar: field count, then (length, value) for dataset_id (uuid)
# and the six float8 columns, all big-endian.
_IN_ROW = np.dtype(
    [("n", ">i2"), ("lid", ">i4"), ("id", "V16")]
    + [item for c in COLUMNS for item in ((f"l_{c}", ">i4"), (c, ">f8"))]
)
_OUT_ROW = np.dtype([("n", ">i2")] + [item for c in COLUMNS for item in ((f"l_{c}", ">i4"), (c, ">f8"))])


class DatasetInvalid(ApplicationError):
    """A CSV that cannot become a dataset (HTTP 400); ``errors`` names ``csv`` line by line."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(message="; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), errors=errors)


def csv_errors(exc: CsvInvalid) -> list[str]:
    """The per-line messages of a rejected CSV (the first MAX_ERRORS, then how many more)."""
    messages = [str(e) for e in exc.errors]
    if exc.total > len(exc.errors):
        messages.append(f"... and {exc.total - len(exc.errors)} more bad rows")
    return messages


def dataset_import(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    raw: bytes,
    filename: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[BarDataset, bool]:
    """Store the bars of an uploaded CSV once for the tenant; returns (dataset, created).

    ``progress(done, total)`` is called as rows are written (for long imports).
    """
    sha = hashlib.sha256(raw).hexdigest()
    existing = BarDataset.objects.filter(tenant=tenant, sha256=sha).first()
    if existing is not None:
        return existing, False
    try:
        cols = parse_bars_csv(raw)
    except CsvInvalid as exc:
        raise DatasetInvalid({"csv": csv_errors(exc)}) from exc
    return dataset_store(
        tenant=tenant, actor=actor, cols=cols, sha256=sha, filename=filename, progress=progress
    )


def dataset_store(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    cols: BarColumns,
    sha256: str,
    filename: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[BarDataset, bool]:
    """Write parsed bars as a new dataset (one COPY), or return the tenant's dataset of that file."""
    n = len(cols)
    spacing = np.diff(cols.ts)
    interval = int(round(float(np.median(spacing)))) if n > 1 else 60
    try:
        with transaction.atomic():
            dataset = BarDataset.objects.create(
                tenant=tenant,
                name=(filename or "upload.csv")[:200],
                sha256=sha256,
                rows=n,
                first_ts=datetime.fromtimestamp(float(cols.ts[0]), tz=UTC),
                last_ts=datetime.fromtimestamp(float(cols.ts[-1]), tz=UTC),
                interval_seconds=max(1, interval),
                created_by=actor if actor is not None and actor.is_authenticated else None,
            )
            _copy_in(dataset.pk, cols, progress)
            audit_record(
                tenant=tenant,
                actor=actor,
                action="dataset.import",
                target=dataset,
                after={"name": dataset.name, "sha256": sha256, "rows": n},
            )
    except IntegrityError:  # the same file imported concurrently: the other import won
        return BarDataset.objects.get(tenant=tenant, sha256=sha256), False
    return dataset, True


def _copy_in(dataset_id: uuid.UUID, cols: BarColumns, progress: Callable[[int, int], None] | None) -> None:
    table = DatasetBar._meta.db_table
    sql = f'COPY "{table}" (dataset_id, ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)'
    n = len(cols)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:  # the psycopg 3 cursor: COPY is not DB-API
            copy.write(_COPY_SIGNATURE + bytes(8))  # flags and header-extension length: 0
            for lo in range(0, n, COPY_BLOCK_ROWS):
                hi = min(n, lo + COPY_BLOCK_ROWS)
                block = np.empty(hi - lo, dtype=_IN_ROW)
                block["n"] = 1 + len(COLUMNS)
                block["lid"] = 16
                block["id"] = np.void(dataset_id.bytes)
                for c in COLUMNS:
                    block[f"l_{c}"] = 8
                    block[c] = getattr(cols, c)[lo:hi]
                copy.write(block.tobytes())
                if progress is not None:
                    progress(hi, n)
            copy.write(b"\xff\xff")


def _decode(body: bytes) -> BarColumns:
    rows = np.frombuffer(body, dtype=_OUT_ROW)
    return BarColumns(*(rows[c].astype(np.float64) for c in COLUMNS))


def dataset_bars_chunks(*, dataset_id: uuid.UUID, chunk: int) -> Iterator[BarColumns]:
    """The dataset's bars in time order, ``chunk`` at a time, decoded while PostgreSQL sends."""
    table = DatasetBar._meta.db_table
    sql = (
        "COPY (SELECT ts, open, high, low, close, volume "  # noqa: S608 - the table name is the model's
        f'FROM "{table}" WHERE dataset_id = %s ORDER BY ts) TO STDOUT (FORMAT BINARY)'
    )
    yield from copy_out_chunks(sql, (dataset_id,), _OUT_ROW.itemsize, chunk, _decode)
