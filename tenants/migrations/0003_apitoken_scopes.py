"""API token scopes. Tokens issued before scopes existed keep every right they had: they get every
scope (including `admin`); tokens created from now on default to `read` only."""

from django.db import migrations, models

import tenants.models

EVERY_SCOPE = [
    "read",
    "strategies:write",
    "instances:write",
    "instances:control",
    "backtests:run",
    "live:request",
    "admin",
]


def every_scope() -> list[str]:
    return list(EVERY_SCOPE)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_audit_append_only")]

    operations = [
        # The default given here fills the existing rows; the next operation sets the real default.
        migrations.AddField(
            model_name="apitoken", name="scopes", field=models.JSONField(default=every_scope)
        ),
        migrations.AlterField(
            model_name="apitoken",
            name="scopes",
            field=models.JSONField(default=tenants.models.default_token_scopes),
        ),
    ]
