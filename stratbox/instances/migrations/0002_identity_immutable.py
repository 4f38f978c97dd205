"""Make an instance's identity immutable in the database itself (PostgreSQL): changing it raises.

The services never change identity and the API rejects attempts with a 400 naming the field;
this trigger covers every other path (admin, shell, a future bug). SQLite (the embedded dev
store) is skipped: Django rebuilds SQLite tables on ALTER, which would silently drop a trigger.
"""

from django.db import migrations

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
    IF NEW.version_id IS DISTINCT FROM OLD.version_id THEN
        RAISE EXCEPTION 'Identity field ''version'' cannot be changed.' USING ERRCODE = 'integrity_constraint_violation';
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
CREATE TRIGGER instances_strategyinstance_identity
    BEFORE UPDATE ON instances_strategyinstance
    FOR EACH ROW EXECUTE FUNCTION instances_strategyinstance_identity_immutable();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS instances_strategyinstance_identity ON instances_strategyinstance;
DROP FUNCTION IF EXISTS instances_strategyinstance_identity_immutable();
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("instances", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
