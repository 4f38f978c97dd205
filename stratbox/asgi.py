"""ASGI entry point: HTTP through Django, websockets through Channels routing, and the MCP server
for AI assistants at /mcp (stratbox/mcp/asgi.py) in the same process."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")
django_asgi_app = get_asgi_application()

from stratbox import accesslog  # noqa: E402

accesslog.install()  # `?token=` never reaches an access log

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs the app registry)

from frontend.routing import websocket_urlpatterns  # noqa: E402
from frontend.ws_auth import websocket_stack  # noqa: E402
from stratbox.health import fast_path  # noqa: E402
from stratbox.mcp.asgi import with_mcp  # noqa: E402
from stratbox.throttled import remember_throttled  # noqa: E402

# Before Django: `/healthz` without a session, and the repeats of a throttled caller until its
# `Retry-After` (a flood of either costs the cores little: stratbox/health.py, stratbox/throttled.py).
application = fast_path(
    remember_throttled(
        with_mcp(
            ProtocolTypeRouter(
                {
                    "http": django_asgi_app,
                    # Session + Origin check for browsers, Bearer/?token= for API clients (frontend/ws_auth.py).
                    "websocket": websocket_stack(URLRouter(websocket_urlpatterns)),
                }
            )
        )
    )
)
