"""Oversized and malformed request bodies get a clear 4xx in the standard error body, never a 500.

- A body over the limit — `DATA_UPLOAD_MAX_MEMORY_SIZE` (5 MiB), or `STRATBOX_MAX_UPLOAD_BYTES`
  for multipart uploads (a backtest CSV may be 100 MiB) — is refused from its Content-Length
  before it is read: 413 `request_too_large`.
- Django's own guards raised while a view reads the body (`RequestDataTooBig` for a body sent
  without a length, too many fields or files) become 413 / 400 the same way.
- JSON nested deeper than the parser can follow (`RecursionError`) is a 400 `parse_error`.

Paths under `/api/` answer the API's standard error body; other paths a short plain-text page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse


def _error(request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        body = {"type": "client_error", "errors": [{"code": code, "detail": detail, "attr": None}]}
        return JsonResponse(body, status=status)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")


def _limit(request: HttpRequest) -> int:
    if request.content_type == "multipart/form-data":
        return int(getattr(settings, "STRATBOX_MAX_UPLOAD_BYTES", 105 * 1024 * 1024))
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)


def too_large(request: HttpRequest, limit: int) -> HttpResponse:
    return _error(request, 413, "request_too_large", f"The request body is larger than {limit} bytes.")


class RequestLimitsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(request, 400, "parse_error", "The Content-Length header is not a number.")
        limit = _limit(request)
        if limit and length > limit:
            return too_large(request, limit)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return too_large(request, _limit(request))
        if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
            return _error(request, 400, "parse_error", str(exception))
        if isinstance(exception, RecursionError):
            return _error(request, 400, "parse_error", "The request body is nested too deeply.")
        return None
