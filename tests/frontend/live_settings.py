"""Settings of the live ASGI server the browser tests drive: the real settings, static files from finders.

The server runs in a subprocess against the test database. Serving static files through the
finders means the test never writes the shared `var/staticfiles` (other suites may be collecting).
"""

from stratbox.settings import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False
# The browser tests flush tables between tests; idle persistent connections would only get in the way.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# The health check's details for a monitor (tests/fairness/test_healthz_flood.py).
STRATBOX_HEALTH_TOKEN = "test-health-token"
