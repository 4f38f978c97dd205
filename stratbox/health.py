"""`GET /healthz`: database, Redis and Celery workers, each reported on its own.

200 only when all answer; 503 otherwise. Anonymous callers get only `{"status": "ok"|"unhealthy"}`;
the parts, timings and errors are for staff (a session) or a monitor holding
`STRATBOX_HEALTH_TOKEN` (`Authorization: Bearer <token>`).

Nothing here can be exhausted by a flood of requests: worker liveness is the heartbeat the workers
keep in Redis (`stratbox.workers`), not a broker round trip; Redis is reached through a bounded
pool; and the report is computed at most once per `CACHE_SECONDS` per process, so a thousand
concurrent checks cost one database query and one Redis round trip.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from stratbox import workers
from stratbox.celery import app, long_queue

CACHE_SECONDS = 1.0


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _check_redis() -> str:
    workers.client().ping()
    return "pong"


def _check_workers() -> str:
    alive = workers.workers_alive()
    queues = {queue for consumed in alive.values() for queue in consumed}
    missing = [q for q in (app.conf.task_default_queue, long_queue()) if q not in queues]
    if missing:
        raise RuntimeError(
            f"no worker heartbeat within {workers.ALIVE_SECONDS:g} s for queue(s) {', '.join(missing)}"
        )
    return f"{len(alive)} worker(s) alive"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "redis": _check_redis,
    "worker": _check_workers,
}

_lock = threading.Lock()
_cached: tuple[float, dict[str, Any], bool] | None = None


def health_report() -> tuple[dict[str, Any], bool]:
    """The checks' report and whether all passed; reused for `CACHE_SECONDS`."""
    global _cached
    with _lock:  # one computation at a time: concurrent callers wait for it and share the result
        now = time.monotonic()
        if _cached is not None and now - _cached[0] < CACHE_SECONDS:
            return _cached[1], _cached[2]
        report: dict[str, dict[str, object]] = {}
        for name, check in CHECKS.items():
            started = time.perf_counter()
            try:
                report[name] = {"ok": True, "detail": check()}
            except Exception as exc:  # noqa: BLE001 - every failure is reported, by name, never raised
                report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            report[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
        healthy = all(part["ok"] for part in report.values())
        _cached = (time.monotonic(), report, healthy)
        return report, healthy


def health_cache_clear() -> None:
    global _cached
    with _lock:
        _cached = None


def _may_see_details(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    token = getattr(settings, "STRATBOX_HEALTH_TOKEN", "")
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and bool(given) and hmac.compare_digest(given.encode(), token.encode())


def healthz(request: HttpRequest) -> JsonResponse:
    report, healthy = health_report()
    body: dict[str, Any] = {"status": "ok" if healthy else "unhealthy"}
    if _may_see_details(request):
        body.update(report)
    return JsonResponse(body, status=200 if healthy else 503)
