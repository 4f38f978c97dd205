"""The platform's one application error family, and Django-level error pages under /api/.

A service that refuses a request raises `ApplicationError(code, message, field=None, status=...)`
(or a subclass that fixes the status): a stable UPPER_SNAKE (or DRF-style lower-case) `code`, a
message for people, the input field it concerns and the HTTP status it means. Nothing here
imports DRF, so services, tasks, commands and the admin raise and catch it alike. Two adapters
turn it into what a caller sees:

- the API: `tenants.api_errors.exception_handler` (REST_FRAMEWORK's EXCEPTION_HANDLER) renders it
  as drf-standardized-errors' body — a 400 as a `validation_error` naming each field, any other
  status as a `client_error` with the code;
- a Django form: `form_add_error(form, exc)` puts each message on the field it names.

Several fields refused at once travel as `errors`, a mapping from field to messages (nested for a
nested input such as an instance's `config`); a message with its own code is an `ErrorMessage`.

The Django-level handlers (`handler404`/`handler500`, wired in `stratbox/urls.py`) give a URL that
matches no DRF view, or a crash outside DRF, the same JSON body under /api/ and leave every other
path to Django's normal pages.

It lives in `tenants`, the lowest app layer, so every app can import it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

if TYPE_CHECKING:  # typing only: forms are never needed at import time
    from django import forms

API_PREFIX = "/api/"
INVALID = "invalid"  # the code of a message given without one (DRF's ValidationError default)


@dataclass(frozen=True)
class ErrorMessage:
    """One message with its own code, inside an `ApplicationError`'s `errors`."""

    message: str
    code: str = INVALID

    def __str__(self) -> str:
        return self.message or "; ".join(item.message for _, item in self.messages())


# A field's messages: str | ErrorMessage, a list of them, or a mapping of sub-fields to more.
ErrorTree = Any


class ApplicationError(Exception):
    """A business rule refused the request.

    `code` is stable and shown verbatim; `message` is for people; `field` names the input it
    concerns (None: the request as a whole); `status` is the HTTP status an API answers (400 by
    default; subclasses fix their own). `errors` carries several fields' messages at once.
    """

    status: int = 400
    default_code: str = INVALID

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        field: str | None = None,
        status: int | None = None,
        *,
        errors: Mapping[str, ErrorTree] | list[ErrorTree] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        self._errors = errors

    def __str__(self) -> str:
        return self.message or "; ".join(item.message for _, item in self.messages())

    @property
    def errors(self) -> Mapping[str, ErrorTree] | list[ErrorTree]:
        """Every message by field (a list when none names a field)."""
        if self._errors is not None:
            return self._errors
        item = ErrorMessage(self.message, self.code)
        return {self.field: [item]} if self.field else [item]

    def messages(self) -> Iterator[tuple[str | None, ErrorMessage]]:
        """(dotted field path or None, message) for every message, in order."""
        yield from _walk(self.errors, None)


def _walk(tree: ErrorTree, path: str | None) -> Iterator[tuple[str | None, ErrorMessage]]:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _walk(item, path)
    elif isinstance(tree, ErrorMessage):
        yield path, tree
    else:
        yield path, ErrorMessage(str(tree))


class Conflict(ApplicationError):
    """The current state of what the request names forbids it (HTTP 409)."""

    status = 409


class Forbidden(ApplicationError):
    """The caller may not do this (HTTP 403)."""

    status = 403
    default_code = "permission_denied"


NON_FIELD = ("non_field_errors", "__all__")


def form_add_error(
    form: forms.BaseForm, exc: ApplicationError, field_map: Mapping[str, str] | None = None
) -> None:
    """Put an application error's messages on a Django form.

    A message lands on the form field its path names (through `field_map` for a differently named
    one, e.g. ``{"config.window": "cfg__window"}``); a nested path whose parent is a form field
    (or its `field_map` target) lands there with the rest of the path in front (``window: ...``);
    anything else is form-wide, prefixed with the field it concerns.
    """
    field_map = field_map or {}
    for path, item in exc.messages():
        if path is None or path in NON_FIELD:
            form.add_error(None, item.message)
            continue
        target = field_map.get(path, path)
        if target in form.fields:
            form.add_error(target, item.message)
            continue
        parent, _, rest = path.partition(".")
        parent = field_map.get(parent, parent)
        if rest and parent in form.fields:
            form.add_error(parent, f"{rest}: {item.message}")
        else:
            form.add_error(None, f"{path}: {item.message}")


# --- Django-level error pages --------------------------------------------------------------


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
