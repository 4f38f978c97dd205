"""Django-level error pages that speak the API's one error body under /api/.

DRF views already answer errors through drf-standardized-errors; a URL that matches no view
(`/api/v1/nope/`) or a crash outside DRF never reaches it and would get Django's HTML page.
These handlers (wired as `handler404`/`handler500` in `stratbox/urls.py`) give such /api/ requests
the same JSON body and leave every other path to Django's normal pages.

It lives beside `tenants.scoping`, which already owns the API's request conventions, and imports
no other app, so the layering holds.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _error_body(*, error_type: str, code: str, detail: str) -> dict[str, object]:
    # The shape drf-standardized-errors produces for a non-validation error.
    return {"type": error_type, "errors": [{"code": code, "detail": detail, "attr": None}]}


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            _error_body(error_type="client_error", code="not_found", detail="Not found."), status=404
        )
    return defaults.page_not_found(request, exception)  # type: ignore[arg-type]


def handler500(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        # Generic on purpose: a server error must not leak internals (same text as Django's page).
        return JsonResponse(
            _error_body(error_type="server_error", code="error", detail="Server Error (500)"), status=500
        )
    return defaults.server_error(request)
