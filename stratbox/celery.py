"""The Celery application: the data plane's workers and beat are started from here."""

import os

from celery import Celery
from celery.signals import celeryd_after_setup, task_postrun, task_prerun, worker_ready, worker_shutdown

from stratbox.workers import on_worker_ready, on_worker_setup, on_worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

app = Celery("stratbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Long work (backtests, housekeeping) goes to its own queue, `<default queue>.long`, consumed by its
# own worker pool (`celery worker -Q <queue>.long`): a tick batch never waits behind a backtest chunk.
LONG_QUEUE_SUFFIX = ".long"
LONG_TASK_PREFIXES = ("backtests.", "engine.runs_prune")


def long_queue() -> str:
    return f"{app.conf.task_default_queue}{LONG_QUEUE_SUFFIX}"


def route_task(name: str, *args: object, **kwargs: object) -> dict[str, str] | None:
    """Celery router: long tasks to the long queue; everything else to the default queue."""
    if name.startswith(LONG_TASK_PREFIXES):
        return {"queue": long_queue()}
    return None


@worker_ready.connect
def _heartbeat_start(sender: object = None, **kwargs: object) -> None:
    on_worker_ready(sender)


@celeryd_after_setup.connect
def _long_work_yields(sender: object = None, instance: object = None, **kwargs: object) -> None:
    on_worker_setup(instance)


@worker_shutdown.connect
def _heartbeat_stop(**kwargs: object) -> None:
    on_worker_shutdown()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(**_: object) -> None:
    """Close a connection only when it is broken or older than CONN_MAX_AGE, as a request does.

    Celery's Django fix-up would close every connection before and after every task (see
    CELERY_DB_REUSE_MAX in settings); a tick batch then paid a new PostgreSQL backend each time.
    """
    from django.db import close_old_connections  # not at import: the settings module loads this one

    close_old_connections()
