"""The order model of backtest, paper and live: stop / stop-limit, time in force, brackets,
reduce-only, partial fills, the venue's order id, and the statuses new / accepted /
partially_filled / filled / cancelled / expired / rejected / unknown; per-account fill timing,
fixed fee, leverage and shorting; signed positions (the long-only constraint goes).

Existing rows keep their meaning: a resting order was `pending`, it is `accepted` now (the
partial indexes on resting orders follow); a filled order's `filled_qty` is its qty. Accounts
keep today's behaviour (fills at the signal close, no fixed fee, 1x, no shorting).
"""

from decimal import Decimal
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

RESTING = "WHERE status = 'accepted' AND NOT is_shadow"
OLD_RESTING = "WHERE status = 'pending' AND NOT is_shadow"
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
    Order = apps.get_model("trading", "Order")
    Order.objects.filter(status="pending").update(status="accepted")
    Order.objects.filter(filled_at__isnull=False).update(filled_qty=models.F("qty"))
    _indexes(schema_editor, RESTING)


def backwards(apps: Any, schema_editor: Any) -> None:
    Order = apps.get_model("trading", "Order")
    Order.objects.filter(status__in=["accepted", "new", "partially_filled", "unknown"]).update(
        status="pending"
    )
    Order.objects.filter(status="expired").update(status="cancelled")
    _indexes(schema_editor, OLD_RESTING)


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0005_order_version"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="position",
            name="position_long_only",
        ),
        migrations.AddField(
            model_name="account",
            name="allow_short",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="account",
            name="fee_fixed",
            field=models.DecimalField(decimal_places=4, default=Decimal("0"), max_digits=12),
        ),
        migrations.AddField(
            model_name="account",
            name="fill_timing",
            field=models.CharField(
                choices=[
                    ("signal_close", "At the signal bar's close"),
                    ("next_open", "At the next bar's open"),
                ],
                default="signal_close",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="leverage",
            field=models.DecimalField(decimal_places=2, default=Decimal("1"), max_digits=6),
        ),
        migrations.AddField(
            model_name="order",
            name="bracket",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="order",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="filled_qty",
            field=models.DecimalField(decimal_places=8, default=Decimal("0"), max_digits=28),
        ),
        migrations.AddField(
            model_name="order",
            name="leg",
            field=models.CharField(blank=True, max_length=2),
        ),
        migrations.AddField(
            model_name="order",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="legs",
                to="trading.order",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="reduce_only",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="order",
            name="stop_price",
            field=models.DecimalField(blank=True, decimal_places=8, max_digits=28, null=True),
        ),
        migrations.AddField(
            model_name="order",
            name="tif",
            field=models.CharField(
                choices=[
                    ("gtc", "Good till cancelled"),
                    ("ioc", "Immediate or cancel"),
                    ("fok", "Fill or kill"),
                    ("day", "Day"),
                ],
                default="gtc",
                max_length=4,
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="triggered",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="order",
            name="venue_order_id",
            field=models.CharField(blank=True, max_length=128),
        ),
        migrations.AlterField(
            model_name="order",
            name="status",
            field=models.CharField(
                choices=[
                    ("new", "New (stored, not yet accepted)"),
                    ("accepted", "Accepted (resting)"),
                    ("partially_filled", "Partially filled"),
                    ("filled", "Filled"),
                    ("cancelled", "Cancelled"),
                    ("expired", "Expired"),
                    ("rejected", "Rejected (denied by the risk gate)"),
                    ("unknown", "Unknown (sent, outcome not yet known)"),
                    ("shadow", "Shadow (observe mode, never sent)"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="type",
            field=models.CharField(
                choices=[
                    ("market", "Market"),
                    ("limit", "Limit"),
                    ("stop", "Stop"),
                    ("stop_limit", "Stop-limit"),
                    ("settlement", "Settlement (a resolved binary market)"),
                ],
                max_length=12,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
