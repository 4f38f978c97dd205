"""WSGI entry point (HTTP only; the platform is normally served over ASGI)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")
application = get_wsgi_application()
