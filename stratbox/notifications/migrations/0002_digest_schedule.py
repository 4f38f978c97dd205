"""Beat runs the quiet-hours digest flush every minute and the graduation and plugin staleness sweeps every five minutes."""

from django.db import migrations


def schedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    Interval = apps.get_model("django_celery_beat", "IntervalSchedule")
    Periodic = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = Interval.objects.get_or_create(every=60, period="seconds")
    Periodic.objects.update_or_create(
        name="notifications.digest_flush",
        defaults={"task": "notifications.digest_flush", "interval": every, "enabled": True},
    )
    five, _ = Interval.objects.get_or_create(every=300, period="seconds")
    for task in ("governance.graduation_sweep", "plugins.stale_sweep"):
        Periodic.objects.update_or_create(
            name=task, defaults={"task": task, "interval": five, "enabled": True}
        )


def unschedule(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="notifications.digest_flush"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(schedule, unschedule)]
