"""The row-stamp cache: a batch's instance rows, rebuilt only when one of their rows moved.

Instance rows (with tenant, market, account, version) are kept between batches of this process,
keyed by id, each with its stamp (see below). One statement per batch reads the stamps and the
accounts' balances.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from django.db import connection

from stratbox.engine.selectors import tick_instances
from stratbox.instances.models import StrategyInstance
from stratbox.markets.models import Market
from stratbox.trading.models import Account
from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import Tenant

# Instance rows (with tenant, market, account, version) kept between batches of this process, keyed
# by id, each with its stamp: the `xmin` and `ctid` of the instance, tenant and market rows (the
# transaction that wrote the row version and where it lies: every UPDATE, through save() or not,
# makes a new version, in a new place and, from another transaction, with a new xmin, while a row
# lock leaves both alone), a hash of every column of the account row but its balance
# (which every fill moves and which is read here anyway; once per account, not per instance) and
# the definition's updated_at (versions are immutable). A batch reads the stamps of its instances in
# one statement and rebuilds only the rows whose stamp moved, so any change is seen by the very next
# batch; an unchanged row is never rebuilt. Building ~25 model graphs per batch was a tenth of a
# quiet tick's CPU, and rebuilding every row every 30 s still 4 % of a worker's; hashing every
# joined row as JSON (the stamps before `xmin`) made this the costliest statement of a batch.
ROW_CACHE_MAX = 50_000
_rows: dict[str, tuple[tuple[Any, ...], StrategyInstance]] = {}
_rows_pid: int | None = None

_STAMP_SQL = (
    f"WITH i AS (SELECT id, xmin::text || ctid::text AS x, tenant_id, account_id, market_id, version_id "  # noqa: S608 - table names only
    f"FROM {StrategyInstance._meta.db_table} WHERE id = ANY(%s)), "
    f"a AS (SELECT id, balance, md5((to_jsonb(acc) - 'balance')::text) AS h FROM {Account._meta.db_table} acc "
    "WHERE id IN (SELECT account_id FROM i)) "
    "SELECT i.id, i.x, t.xmin::text || t.ctid::text, m.xmin::text || m.ctid::text, a.h, d.updated_at, a.id, a.balance "
    f"FROM i JOIN {Tenant._meta.db_table} t ON t.id = i.tenant_id JOIN a ON a.id = i.account_id "
    f"JOIN {Market._meta.db_table} m ON m.id = i.market_id "
    f"JOIN {StrategyVersion._meta.db_table} v ON v.id = i.version_id "
    f"JOIN {StrategyDefinition._meta.db_table} d ON d.id = v.definition_id"
)


def instances_for_batch(
    instance_ids: list[str], balances: dict[Any, Any] | None = None
) -> dict[str, StrategyInstance]:
    """The batch's instance rows (cached, see above); `balances` receives their accounts' balances
    (read by the same statement: the trusted snapshots need them)."""
    global _rows_pid
    if _rows_pid != os.getpid():  # a forked worker child starts with its own cache
        _rows.clear()
        _rows_pid = os.getpid()
    with connection.cursor() as cursor:
        cursor.execute(_STAMP_SQL, [[uuid.UUID(i) for i in instance_ids]])
        stamps = {}
        for row in cursor.fetchall():
            stamps[str(row[0])] = tuple(row[1:6])
            if balances is not None:
                balances[row[6]] = row[7]
    out: dict[str, StrategyInstance] = {}
    missing = []
    for iid, stamp in stamps.items():
        cached = _rows.get(iid)
        if cached is not None and cached[0] == stamp:
            out[iid] = cached[1]
        else:
            missing.append(iid)
    if missing:
        if len(_rows) + len(missing) > ROW_CACHE_MAX:
            _rows.clear()
        for row in tick_instances().filter(pk__in=missing):
            iid = str(row.pk)
            out[iid] = row
            # The stamp read before the row: if the row moved in between, the next batch sees a
            # newer stamp and reads it again.
            if iid in stamps:
                _rows[iid] = (stamps[iid], row)
    return out
