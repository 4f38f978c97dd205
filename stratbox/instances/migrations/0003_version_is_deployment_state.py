"""The version an instance runs becomes deployment state: an upgrade may change it.

The identity trigger (0002) no longer refuses a version change; id, tenant, strategy, account and
market stay immutable. `carry_state_revision` marks an upgrade that keeps the strategy's state.
A version change must still belong to the same strategy: the trigger checks that too.
"""

from importlib import import_module

from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION instances_strategyinstance_identity_immutable() RETURNS trigger AS $$
BEGIN
    IF NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'Identity field ''id'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
        RAISE EXCEPTION 'Identity field ''tenant'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.strategy_id IS DISTINCT FROM OLD.strategy_id THEN
        RAISE EXCEPTION 'Identity field ''strategy'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.version_id IS DISTINCT FROM OLD.version_id AND NOT EXISTS (
        SELECT 1 FROM strategies_store_strategyversion v
        WHERE v.id = NEW.version_id AND v.definition_id = NEW.strategy_id
    ) THEN
        RAISE EXCEPTION 'Identity field ''strategy'' cannot be changed: the version must belong to the instance''s strategy.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.account_id IS DISTINCT FROM OLD.account_id THEN
        RAISE EXCEPTION 'Identity field ''account'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.market_id IS DISTINCT FROM OLD.market_id THEN
        RAISE EXCEPTION 'Identity field ''market'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            import_module("stratbox.instances.migrations.0002_identity_immutable").FORWARD.split(
                "CREATE TRIGGER"
            )[0]
        )


class Migration(migrations.Migration):
    dependencies = [("instances", "0002_identity_immutable"), ("strategies_store", "0001_initial")]
    operations = [
        migrations.AddField(
            model_name="strategyinstance",
            name="carry_state_revision",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(forward, backward),
    ]
