"""The Celery application: the data plane's workers and beat are started from here."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

app = Celery("stratbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _recycle_database_connections(**_: object) -> None:
    """Close a connection only when it is broken or older than CONN_MAX_AGE, as a request does.

    Celery's Django fix-up would close every connection before and after every task (see
    CELERY_DB_REUSE_MAX in settings); a tick batch then paid a new PostgreSQL backend each time.
    """
    from django.db import close_old_connections  # not at import: the settings module loads this one

    close_old_connections()
