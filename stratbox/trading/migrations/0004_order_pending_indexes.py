"""Partial indexes on resting real orders, for the risk gate's reads (`selectors.exposure_read`).

The gate sums the resting (status 'pending', non-shadow) buys of an instance, its tenant and its
account, and the resting sells of an instance in a market. Through the instance/tenant/account
indexes those sums visited every order the owner ever placed (their cost grew with history);
these indexes hold only resting orders, so a few entries each. Paper market orders are written
already filled and never enter them.

Plain SQL rather than `Meta.indexes` so that the model state (and `makemigrations`) is untouched.
On PostgreSQL they are built CONCURRENTLY, so that building them on a large table does not block
order writes; the embedded SQLite database of `make run` gets the same partial indexes plainly.
"""

from typing import Any

from django.db import migrations

PENDING = "WHERE status = 'pending' AND NOT is_shadow"
INDEXES = {
    "order_pending_instance": "(instance_id, market_id)",
    "order_pending_tenant": "(tenant_id)",
    "order_pending_account": "(account_id)",
}


def _concurrently(schema_editor: Any) -> str:
    return "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""


def create(apps: Any, schema_editor: Any) -> None:
    for name, columns in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX {_concurrently(schema_editor)}IF NOT EXISTS {name} ON trading_order {columns} {PENDING}"
        )


def drop(apps: Any, schema_editor: Any) -> None:
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX {_concurrently(schema_editor)}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("trading", "0003_live_account_credentials"),
    ]

    operations = [migrations.RunPython(create, drop)]
