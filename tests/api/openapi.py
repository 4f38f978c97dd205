"""OpenAPI helpers for the API tests: the finished apps' schema generated in-process, and its warnings.

The whole-project gate (`manage.py spectacular --validate --fail-on-warn`) covers every registered
view; these helpers generate the schema of the finished apps only, so their tests are meaningful
while other apps' views are still being written.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.validation import validate_schema

# The apps whose API is complete; each urls module is mounted under /api/v1/ as in stratbox/urls.py.
FINISHED_URLCONFS = (
    "tenants.urls",
    "strategies_store.urls",
    "stratbox.markets.urls",
    "stratbox.instances.urls",
    "stratbox.trading.urls",
    "stratbox.engine.urls",
    "stratbox.backtests.urls",
    "stratbox.governance.urls",
)


def finished_patterns() -> list[Any]:
    return [path("api/v1/", include([path("", include(module)) for module in FINISHED_URLCONFS]))]


def generate(patterns: list[Any] | None = None) -> tuple[dict[str, Any], list[str], list[str]]:
    """(schema as plain JSON data, warnings, errors) for `patterns` (None = the whole project)."""
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    warnings, errors = list(GENERATOR_STATS._warn_cache), list(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    # Through the renderer, as /api/schema/ serves it: lazy strings and Decimals become JSON.
    data = json.loads(OpenApiJsonRenderer().render(schema, renderer_context={}))
    validate_schema(data)
    return data, warnings, errors


@cache
def finished_schema() -> dict[str, Any]:
    schema, _, _ = generate(finished_patterns())
    return schema


class InTransactionWsgiApp:
    """Django's WSGI app for in-process clients (schemathesis), inside the test's transaction.

    Django's handler closes "old" connections on request_started/finished, which would close the
    test's connection mid-transaction. Django's own test client disconnects that receiver around
    each request (and reconnects it after), so this app disconnects it on every call too.
    `reconnect()` restores it when the test is done.
    """

    def __init__(self) -> None:
        from django.core.wsgi import get_wsgi_application

        self.app = get_wsgi_application()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from django.core import signals
        from django.db import close_old_connections

        signals.request_started.disconnect(close_old_connections)
        signals.request_finished.disconnect(close_old_connections)
        return self.app(environ, start_response)

    @staticmethod
    def reconnect() -> None:
        from django.core import signals
        from django.db import close_old_connections

        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
