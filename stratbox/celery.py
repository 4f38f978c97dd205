"""The Celery application: the data plane's workers and beat are started from here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")

app = Celery("stratbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
