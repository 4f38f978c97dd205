"""`GET /healthz`: database, Redis and a Celery worker, each reported on its own.

200 only when all three answer; 503 otherwise, with the failing part named.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from stratbox.celery import app as celery_app


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _check_redis() -> str:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return "pong"


def _check_worker() -> str:
    replies = celery_app.control.ping(timeout=1.0, limit=1)  # the first answer is enough
    if not replies:
        raise RuntimeError("no Celery worker answered a ping within 1 s")
    return "a worker answered"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "redis": _check_redis,
    "worker": _check_worker,
}


def healthz(request: HttpRequest) -> JsonResponse:
    report: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            report[name] = {"ok": True, "detail": detail}
        except Exception as exc:  # noqa: BLE001 - every failure is reported, by name, never raised
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        report[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    healthy = all(part["ok"] for part in report.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unhealthy", **report}, status=200 if healthy else 503
    )
