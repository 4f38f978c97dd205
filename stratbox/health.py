"""`GET /healthz`: database, Redis and Celery workers, each reported on its own.

200 only when all answer; 503 otherwise. Anonymous callers get only `{"status": "ok"|"unhealthy"}`;
the parts, timings and errors are for staff (a session) or a monitor holding
`STRATBOX_HEALTH_TOKEN` (`Authorization: Bearer <token>`).

Nothing here can be exhausted by a flood of requests: worker liveness is the heartbeat the workers
keep in Redis (`stratbox.workers`), not a broker round trip; Redis is reached through a bounded
pool; and the report is computed at most once per `CACHE_SECONDS` per process, so a thousand
concurrent checks cost one database query and one Redis round trip.

Nor does answering them cost much: `fast_path` answers every `/healthz` that carries no session
cookie in the ASGI layer, before Django — no middleware, no thread hop while the report is fresh
(~0.13 ms of the web server's CPU per check instead of ~3.2 ms). Only a signed-in session (staff see the parts)
goes through Django's view.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connection
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


def health_cached() -> tuple[dict[str, Any], bool] | None:
    """The report while it is fresh, else None (no lock: a read of one reference)."""
    cached = _cached
    if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1], cached[2]
    return None


def _health_report_in_thread() -> tuple[dict[str, Any], bool]:
    # Outside Django's request cycle: what its request_started/finished signals would do.
    close_old_connections()
    try:
        return health_report()
    finally:
        close_old_connections()


def health_cache_clear() -> None:
    global _cached
    with _lock:
        _cached = None


def _is_monitor(authorization: str) -> bool:
    token = getattr(settings, "STRATBOX_HEALTH_TOKEN", "")
    given = authorization.removeprefix("Bearer ").strip()
    return bool(token) and bool(given) and hmac.compare_digest(given.encode(), token.encode())


def _may_see_details(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return True
    return _is_monitor(request.headers.get("Authorization", ""))


def healthz(request: HttpRequest) -> JsonResponse:
    report, healthy = health_report()
    body: dict[str, Any] = {"status": "ok" if healthy else "unhealthy"}
    if _may_see_details(request):
        body.update(report)
    return JsonResponse(body, status=200 if healthy else 503)


Asgi = Callable[[dict[str, Any], Any, Any], Any]


def fast_path(app: Asgi) -> Asgi:
    """Wrap the ASGI app: `GET|HEAD /healthz` without a session cookie is answered here, with the
    same status and body as the view (the parts for the monitor token), never reaching Django."""
    session_cookie = f"{settings.SESSION_COOKIE_NAME}=".encode()

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/healthz" or scope["method"] not in ("GET", "HEAD"):
            return await app(scope, receive, send)
        authorization = b""
        for name, value in scope["headers"]:
            if name == b"cookie" and session_cookie in value:
                return await app(scope, receive, send)  # a session: staff may see the parts
            if name == b"authorization":
                authorization = value
        answer = health_cached()
        if answer is None:
            answer = await sync_to_async(_health_report_in_thread, thread_sensitive=True)()
        report, healthy = answer
        payload: dict[str, Any] = {"status": "ok" if healthy else "unhealthy"}
        if authorization and _is_monitor(authorization.decode("latin-1")):
            payload.update(report)
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if healthy else 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                    (b"x-content-type-options", b"nosniff"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
        return None

    return wrapper
