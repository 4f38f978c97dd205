"""Resting real orders that filled in part (`partially_filled`) still reserve the rest of their
notional in the risk gate, like `accepted` ones: the partial indexes the gate's one read goes
through (`order_pending_*`, see 0004 and 0006) cover both statuses."""

from typing import Any

from django.db import migrations

RESTING = "WHERE status IN ('accepted', 'partially_filled') AND NOT is_shadow"
OLD_RESTING = "WHERE status = 'accepted' AND NOT is_shadow"
INDEXES = {
    "order_pending_instance": "(instance_id, market_id)",
    "order_pending_tenant": "(tenant_id)",
    "order_pending_account": "(account_id)",
}


def _indexes(schema_editor: Any, condition: str) -> None:
    for name, columns in INDEXES.items():
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(f"CREATE INDEX {name} ON trading_order {columns} {condition}")


def forwards(apps: Any, schema_editor: Any) -> None:
    _indexes(schema_editor, RESTING)


def backwards(apps: Any, schema_editor: Any) -> None:
    _indexes(schema_editor, OLD_RESTING)


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0007_account_max_volume_fraction"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
