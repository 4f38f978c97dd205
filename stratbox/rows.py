"""Single-row writes prepared exactly as the ORM prepares them, for statements of our own.

Hot paths (an order and its fills, a tick's run row) write rows with one statement of their own
(`INSERT ... ON CONFLICT`, data-modifying CTEs, `RETURNING`) instead of `Model.save()`, whose
machinery cost more than the database work. The values still go through each field's `pre_save`
and `get_db_prep_save`, so defaults, `auto_now` and JSON adaptation are the ORM's own.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model


@functools.cache
def _write_sql(model: type[Model], update: tuple[str, ...] | None, auto_pk: bool) -> tuple[str, list[Any]]:
    """INSERT (update None) or UPDATE ... WHERE pk of `model`'s table, and the fields it binds in order."""
    meta = model._meta
    if update is None:
        fields = [f for f in meta.local_concrete_fields if not (auto_pk and f is meta.auto_field)]
        columns = ", ".join(f'"{f.column}"' for f in fields)
        marks = ", ".join("%s" for _ in fields)
        return f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({marks})', fields  # noqa: S608 - model metadata
    fields = [meta.get_field(name) for name in update]
    assignments = ", ".join(f'"{f.column}" = %s' for f in fields)
    return f'UPDATE "{meta.db_table}" SET {assignments} WHERE "{meta.pk.column}" = %s', [*fields, meta.pk]  # noqa: S608


def row_write(obj: Model, update: tuple[str, ...] | None = None) -> tuple[str, list[Any]]:
    """The statement writing `obj` (a new row, or the `update` fields of its row) and its parameters,
    prepared as the ORM's own INSERT / UPDATE prepare them."""
    sql, fields = _write_sql(type(obj), update, obj.pk is None)
    adding = update is None
    conn = connections[DEFAULT_DB_ALIAS]  # `connection` itself is a proxy: one lookup, not one per field
    return sql, [f.get_db_prep_save(f.pre_save(obj, adding), conn) for f in fields]


def mark_saved(obj: Model) -> None:
    """Tell the ORM that `obj` is now a stored row (as `save()` would have), after our own INSERT."""
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
