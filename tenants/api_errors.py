"""The API's exception handling: application errors in drf-standardized-errors' body.

drf-standardized-errors' handler (REST_FRAMEWORK's EXCEPTION_HANDLER) runs with this handler class
(its EXCEPTION_HANDLER_CLASS setting; the handler function itself stays theirs, so their OpenAPI
schema keeps documenting every error response). An `ApplicationError` becomes the DRF exception
whose standard body it means — a 400 a `ValidationError` naming each field (`validation_error`), any
other status an `APIException` of that status carrying the code (`client_error`) — and then
drf-standardized-errors formats it like every other error, so views never translate a
service's error themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from drf_standardized_errors.handler import ExceptionHandler
from rest_framework import exceptions

from tenants.errors import ApplicationError, ErrorMessage, ErrorTree


def _detail(tree: ErrorTree) -> Any:
    if isinstance(tree, Mapping):
        return {key: _detail(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_detail(item) for item in tree]
    if isinstance(tree, ErrorMessage):
        return exceptions.ErrorDetail(tree.message, code=tree.code)
    return tree  # a plain string: DRF gives it the code "invalid"


def as_drf_exception(exc: ApplicationError) -> exceptions.APIException:
    """The DRF exception whose standard body `exc` means."""
    if exc.status == 400:
        return exceptions.ValidationError(_detail(exc.errors))
    drf = exceptions.APIException(detail=exc.message, code=exc.code)
    drf.status_code = exc.status
    return drf


class RequestTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "request_too_large"


class ApplicationExceptionHandler(ExceptionHandler):
    def convert_known_exceptions(self, exc: Exception) -> Exception:
        if isinstance(exc, ApplicationError):
            return as_drf_exception(exc)
        # Body errors raised while a view reads the request are 413 / 400, never a 500
        # (stratbox/request_limits.py refuses most of them earlier, from Content-Length).
        if isinstance(exc, RequestDataTooBig):
            return RequestTooLarge("The request body is too large.")
        if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            return exceptions.ParseError(str(exc))
        if isinstance(exc, RecursionError):
            return exceptions.ParseError("The request body is nested too deeply.")
        return super().convert_known_exceptions(exc)
