"""Bar datasets: a tenant's imported CSVs, stored once and reused by later backtests.

An import parses the file (:mod:`stratbox.backtests.csvbars`, every bad line named) and
bulk-loads the bars with one binary ``COPY ... FROM STDIN`` into blocks of float8[] columns
(:class:`DatasetBlock`): numpy writes PostgreSQL's binary array format directly, so a million bars
cost a few array operations, one stream and a hundred index entries -- not a million INSERTs,
Python objects or index entries. The same file (sha256) imported again by the same tenant returns
the stored dataset. A run reads its bars back with one binary ``COPY ... TO STDOUT``, decoded by
numpy block by block.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction

from stratbox.backtests.bars import _COPY_SIGNATURE
from stratbox.backtests.csvbars import COLUMNS, BarColumns, CsvInvalid, parse_bars_csv
from stratbox.backtests.models import FINISHED_STATUSES, Backtest, BarDataset, DatasetBlock
from tenants.errors import ApplicationError, Conflict
from tenants.models import Tenant
from tenants.services import audit_record

# PostgreSQL's binary array element: (int32 length = 8, float8), big-endian.
_ELEMENT = np.dtype([("len", ">i4"), ("value", ">f8")])
_FLOAT8_OID = 701


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
) -> tuple[BarDataset, bool]:
    """Store the bars of an uploaded CSV once for the tenant; returns (dataset, created)."""
    sha = hashlib.sha256(raw).hexdigest()
    existing = BarDataset.objects.filter(tenant=tenant, sha256=sha).first()
    if existing is not None:
        return existing, False
    try:
        cols = parse_bars_csv(raw)
    except CsvInvalid as exc:
        raise DatasetInvalid({"csv": csv_errors(exc)}) from exc
    return dataset_store(tenant=tenant, actor=actor, cols=cols, sha256=sha, filename=filename)


def dataset_store(
    *,
    tenant: Tenant,
    actor: AbstractBaseUser | None,
    cols: BarColumns,
    sha256: str,
    filename: str,
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
            _copy_in(dataset.pk, cols)
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


class DatasetInUse(Conflict):
    """A queued or running backtest reads the dataset (HTTP 409): it cannot be deleted now."""

    default_code = "DATASET_IN_USE"


@transaction.atomic
def dataset_delete(*, dataset: BarDataset, actor: AbstractBaseUser | None) -> None:
    """Delete a dataset and its bars; refused while a queued or running backtest reads it.

    The row lock orders this against `backtest_create`, which locks the dataset it runs on: a new
    run either sees the dataset gone or makes this wait and refuse.
    """
    locked = BarDataset.objects.select_for_update().filter(pk=dataset.pk).first()
    if locked is None:
        return
    busy = Backtest.objects.filter(dataset=locked).exclude(status__in=FINISHED_STATUSES).count()
    if busy:
        raise DatasetInUse(
            message=f"{busy} queued or running backtests read this dataset; wait or cancel them"
        )
    audit_record(
        tenant=locked.tenant,
        actor=actor,
        action="dataset.delete",
        target=locked,
        before={"name": locked.name, "sha256": locked.sha256, "rows": locked.rows},
    )
    locked.delete()


def _float8_array(values: np.ndarray) -> bytes:
    """One float8[] field of a binary COPY tuple: its length, then the array (1 dimension, no
    NULLs, element type float8, lower bound 1) and every element with its length."""
    elements = np.empty(len(values), dtype=_ELEMENT)
    elements["len"] = 8
    elements["value"] = values
    header = np.array([1, 0, _FLOAT8_OID, len(values), 1], dtype=">i4").tobytes()
    body = elements.tobytes()
    return (len(header) + len(body)).to_bytes(4, "big") + header + body


def _copy_in(dataset_id: uuid.UUID, cols: BarColumns) -> None:
    table = DatasetBlock._meta.db_table
    sql = f'COPY "{table}" (dataset_id, seq, ts, open, high, low, close, volume) FROM STDIN (FORMAT BINARY)'
    n = len(cols)
    size = DatasetBlock.BLOCK_BARS
    id_field = (16).to_bytes(4, "big") + dataset_id.bytes
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql) as copy:  # the psycopg 3 cursor: COPY is not DB-API
            copy.write(_COPY_SIGNATURE + bytes(8))  # flags and header-extension length: 0
            for seq, lo in enumerate(range(0, n, size)):
                hi = min(n, lo + size)
                parts = [(8).to_bytes(2, "big"), id_field, (4).to_bytes(4, "big") + seq.to_bytes(4, "big")]
                parts += [_float8_array(getattr(cols, c)[lo:hi]) for c in COLUMNS]
                copy.write(b"".join(parts))
            copy.write(b"\xff\xff")


def dataset_bars_chunks(*, dataset_id: uuid.UUID, chunk: int) -> Iterator[BarColumns]:
    """The dataset's bars in time order, ``chunk`` at a time, decoded as PostgreSQL sends them."""
    pending: list[BarColumns] = []
    have = 0
    for block in _blocks(dataset_id):
        pending.append(block)
        have += len(block)
        while have >= chunk:
            joined = BarColumns.concat(pending)
            yield joined.slice(0, chunk)
            rest = joined.slice(chunk, len(joined))
            pending, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield BarColumns.concat(pending)


def _blocks(dataset_id: uuid.UUID) -> Iterator[BarColumns]:
    table = DatasetBlock._meta.db_table
    sql = (
        "COPY (SELECT ts, open, high, low, close, volume "  # noqa: S608 - the table name is the model's
        f'FROM "{table}" WHERE dataset_id = %s ORDER BY seq) TO STDOUT (FORMAT BINARY)'
    )
    buf = bytearray()
    pos = -1  # -1: the file header has not been read yet
    with connection.cursor() as cursor:
        with cursor.cursor.copy(sql, (dataset_id,)) as copy:
            while data := copy.read():
                buf += data
                if pos < 0:
                    if len(buf) < 19:
                        continue
                    if not buf.startswith(_COPY_SIGNATURE):
                        raise ValueError("unexpected COPY output")
                    pos = 19 + int.from_bytes(buf[15:19], "big")
                while (block := _tuple_at(buf, pos)) is not None:
                    cols, pos = block
                    yield cols
                del buf[:pos]
                pos = 0


def _tuple_at(buf: bytearray, pos: int) -> tuple[BarColumns, int] | None:
    """The tuple of six float8[] starting at ``pos`` and the position after it, or None when the
    buffer does not hold all of it yet (or holds the trailer)."""
    if len(buf) < pos + 2 or int.from_bytes(buf[pos : pos + 2], "big", signed=True) == -1:
        return None
    at = pos + 2
    columns = []
    for _ in COLUMNS:
        if len(buf) < at + 4:
            return None
        length = int.from_bytes(buf[at : at + 4], "big", signed=True)
        if length < 20 or len(buf) < at + 4 + length:
            if length < 20 and len(buf) >= at + 4:
                raise ValueError("unexpected COPY array")
            return None
        body = bytes(buf[at + 4 + 20 : at + 4 + length])  # after ndim, flags, oid, size, lower bound
        columns.append(np.frombuffer(body, dtype=_ELEMENT)["value"].astype(np.float64))
        at += 4 + length
    return BarColumns(*columns), at
