"""Seed the registry with the contract's four plugins (seed 003) and make artifacts immutable.

Supported strategies and schema versions are the contract's default registry as seed 003 states
it; staff extend it in the admin (audited). Artifacts: PostgreSQL refuses any UPDATE of a stored
artifact (deleting one with its instance or tenant stays possible).
"""

from django.db import migrations

CHANNELS = ["email", "sms", "push", "telegram"]
MARKET_REGIME_STRATEGIES = [
    "tqqq_growth_income",
    "global_etf_rotation",
    "russell_1000_multi_factor_defensive",
    "mega_cap_leader_rotation_top50_balanced",
]
DEFINITIONS = [
    (
        "market_regime_control",
        "market_regime_control.v1",
        MARKET_REGIME_STRATEGIES,
        ["market_regime_notification"],
        False,
    ),
    ("crisis_response_shadow", "crisis_response_shadow.v1", ["tqqq_growth_income"], [], True),
    ("macro_risk_governor", "macro_risk_governor.v1", ["tqqq_growth_income"], [], True),
    ("taco_rebound_shadow", "taco_rebound_shadow.v2", ["tqqq_growth_income"], [], True),
]
DESCRIPTIONS = {
    "market_regime_control": "Unified market-regime control: notification and position_control sections (default).",
    "crisis_response_shadow": "Crisis response shadow signal (deprecated; use market_regime_control).",
    "macro_risk_governor": "Macro risk governor shadow signal (deprecated; use market_regime_control).",
    "taco_rebound_shadow": "TACO rebound manual-review notice (deprecated; notification-only).",
}
# A daily pipeline's artifact older than four days (the producer's own max price age) is stale.
MAX_AGE_HOURS = 96

FORWARD = """
CREATE OR REPLACE FUNCTION plugins_pluginartifact_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'plugin artifacts are immutable';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER plugins_pluginartifact_no_update
    BEFORE UPDATE ON plugins_pluginartifact
    FOR EACH ROW EXECUTE FUNCTION plugins_pluginartifact_immutable();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS plugins_pluginartifact_no_update ON plugins_pluginartifact;
DROP FUNCTION IF EXISTS plugins_pluginartifact_immutable();
"""


def seed(apps, schema_editor):  # type: ignore[no-untyped-def]
    Definition = apps.get_model("plugins", "PluginDefinition")
    rows = {}
    for plugin, schema, strategies, targets, deprecated in DEFINITIONS:
        rows[plugin], _ = Definition.objects.update_or_create(
            plugin=plugin,
            defaults={
                "description": DESCRIPTIONS[plugin],
                "supported_strategies": strategies,
                "supported_notification_targets": targets,
                "supported_modes": ["shadow"],
                "supported_schema_versions": [schema],
                "default_schema_version": schema,
                "deprecated": deprecated,
                "alert_channels": CHANNELS,
                "max_artifact_age_hours": MAX_AGE_HOURS,
            },
        )
    for plugin, _, _, _, deprecated in DEFINITIONS:
        if deprecated:
            rows[plugin].successor = rows["market_regime_control"]
            rows[plugin].save(update_fields=["successor"])
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def unseed(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("plugins", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
