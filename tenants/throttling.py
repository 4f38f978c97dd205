"""Per-user throttles for expensive or sensitive writes, scoped by purpose.

`uploads` covers strategy and version uploads (each compiles in a fresh sandbox host process);
`token_create` covers API token issuance (a credential). Rates live in
`REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]` (env-configurable in settings). Only writes are
counted: listing strategies must not spend the upload budget. A throttled request gets 429 with
the standard error body (drf-standardized-errors) and a `Retry-After` header.

The rate is read from the live DRF settings on each request rather than captured at import (as
DRF's `THROTTLE_RATES` class attribute does), so settings overrides take effect.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class ScopedWriteThrottle(UserRateThrottle):
    """A per-user rate for the unsafe methods of a view; safe methods are never counted."""

    scope = ""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class UploadThrottle(ScopedWriteThrottle):
    scope = "uploads"


class TokenCreateThrottle(ScopedWriteThrottle):
    scope = "token_create"


class BacktestCreateThrottle(ScopedWriteThrottle):
    scope = "backtests"


class DiffThrottle(UserRateThrottle):
    """Version diffs of large sources cost CPU on every GET: a per-user rate (reads included)."""

    scope = "diffs"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
