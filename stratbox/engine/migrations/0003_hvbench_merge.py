from django.db import migrations


class Migration(migrations.Migration):
    """Joins the quote-trigger and venue-reconcile branches of the engine's migrations."""

    dependencies = [
        ("engine", "0002_hquote_quote_trigger"),
        ("engine", "0002_hstream_venue_reconcile"),
    ]

    operations = []
