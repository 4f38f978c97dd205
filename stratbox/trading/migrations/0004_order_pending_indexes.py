"""Partial indexes on resting real orders, for the risk gate's reads (`selectors.exposure_read`).

The gate sums the resting (status 'pending', non-shadow) buys of an instance, its tenant and its
account, and the resting sells of an instance in a market. Through the instance/tenant/account
indexes those sums visited every order the owner ever placed (their cost grew with history);
these indexes hold only resting orders, so a few entries each. Paper market orders are written
already filled and never enter them.

Plain SQL rather than `Meta.indexes` so that the model state (and `makemigrations`) is untouched;
CONCURRENTLY so that building them on a large table does not block order writes.
"""

from django.db import migrations

PENDING = "WHERE status = 'pending' AND NOT is_shadow"
INDEXES = {
    "order_pending_instance": "(instance_id, market_id)",
    "order_pending_tenant": "(tenant_id)",
    "order_pending_account": "(account_id)",
}


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("trading", "0003_live_account_credentials"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON trading_order {columns} {PENDING}",
            reverse_sql=f"DROP INDEX CONCURRENTLY IF EXISTS {name}",
        )
        for name, columns in INDEXES.items()
    ]
