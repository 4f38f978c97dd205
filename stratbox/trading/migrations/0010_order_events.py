"""Order events: one append-only row per status change of an order (from, to, filled qty, reason,
deny code, when). Rows are never rewritten: PostgreSQL rejects an UPDATE (a DELETE stays possible,
so that an order deleted with its instance takes its events with it).
"""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION trading_orderevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'trading_orderevent is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trading_orderevent_no_update
    BEFORE UPDATE ON trading_orderevent
    FOR EACH ROW EXECUTE FUNCTION trading_orderevent_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS trading_orderevent_no_update ON trading_orderevent;
DROP FUNCTION IF EXISTS trading_orderevent_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_merge_0003_apitoken_scopes_0004_invitation"),
        ("trading", "0009_live_order_send"),
    ]

    operations = [
        migrations.CreateModel(
            name="OrderEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "from_status",
                    models.CharField(
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
                (
                    "to_status",
                    models.CharField(
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
                ("filled_qty", models.DecimalField(decimal_places=8, default=Decimal("0"), max_digits=28)),
                ("deny_code", models.CharField(blank=True, max_length=40)),
                ("reason", models.CharField(blank=True, max_length=300)),
                ("at", models.DateTimeField()),
                (
                    "order",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="events", to="trading.order"
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenants.tenant"
                    ),
                ),
            ],
            options={
                "ordering": ["at", "id"],
                "indexes": [
                    models.Index(fields=["order", "at", "id"], name="trading_ord_order_i_0dcac8_idx"),
                    models.Index(fields=["tenant", "-at"], name="trading_ord_tenant__1f1ee6_idx"),
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
