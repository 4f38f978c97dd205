"""The Stratbox Django project: settings, URLs, ASGI/WSGI and the Celery app, plus the core apps."""

from stratbox.celery import app as celery_app

__all__ = ["celery_app"]
