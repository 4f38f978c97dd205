from __future__ import annotations

import uuid

from django.apps import AppConfig

# Beat entries (installed into django-celery-beat's DatabaseScheduler at beat start-up). Ticks are
# queued by the dispatcher process (`manage.py run_dispatcher`), not by beat: a beat message waits
# behind the batches a busy worker has reserved. The same process flushes the runtime snapshots to
# PostgreSQL, which would otherwise hold up a tick worker every few seconds. `engine.dispatch` and
# `engine.snapshot_flush` stay tasks (ops, cron).
BEAT_SCHEDULE = {
    "engine.reconcile": {"task": "engine.reconcile", "schedule": 30.0, "options": {"expires": 60}},
    "engine.runs_prune": {"task": "engine.runs_prune", "schedule": 3600.0, "options": {"expires": 600}},
    # Live accounts against their venues (orders, positions, cash), and the venues' catalogues.
    "engine.venue_reconcile_all": {
        "task": "engine.venue_reconcile_all",
        "schedule": 60.0,
        "options": {"expires": 120},
    },
    "engine.venue_catalogue_resync": {
        "task": "engine.venue_catalogue_resync",
        "schedule": 6 * 3600.0,
        "options": {"expires": 3600},
    },
}


def reconcile_soon(instance_id: uuid.UUID) -> None:
    """Called by the instances app after a committed change: reconcile that instance on a worker."""
    from stratbox.engine.tasks import reconcile_task  # apps.py loads before the models: no app code at import

    reconcile_task.delay([str(instance_id)])


class EngineConfig(AppConfig):
    name = "stratbox.engine"
    label = "engine"
    verbose_name = "Engine"

    def ready(self) -> None:
        # Imported here, once the app registry is ready (models may be imported from now on).
        from celery import current_app

        from stratbox.engine import tasks  # noqa: F401 - connects the worker signals
        from stratbox.engine.runtime import quote_mark
        from stratbox.instances.events import subscribe_instance_changed  # (as above: the registry is ready)
        from stratbox.markets.quotes import quote_listen

        subscribe_instance_changed(reconcile_soon)
        quote_listen(quote_mark)  # a stored quote marks its market's quote-triggered instances due
        current_app.conf.beat_schedule = {**(current_app.conf.beat_schedule or {}), **BEAT_SCHEDULE}
