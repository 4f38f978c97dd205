"""What an API token may do: its scopes (REST and MCP alike) and the DRF permission that enforces them.

A token carries a list of scopes chosen when it is created. Reading needs `read` (every token has it);
each write endpoint names the one scope it needs in its view's `token_scopes` (by method) or
`write_scope` attribute. A write endpoint that names none needs `admin` — fail closed: a new
endpoint is out of reach of narrow tokens until it says which capability it is. Session users are
not affected (their rights are their role's).

Tokens created before scopes existed were migrated with every scope (tenants migration 0003), so
they keep the rights they had.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models
from rest_framework import permissions
from rest_framework.request import Request


class TokenScope(models.TextChoices):
    READ = "read", "Read everything in the tenant (always granted)"
    STRATEGIES_WRITE = "strategies:write", "Upload strategies and new versions"
    INSTANCES_WRITE = "instances:write", "Create instances, change their config, upgrade them"
    INSTANCES_CONTROL = "instances:control", "Change modes, pause, resume, kill switch, test runs"
    BACKTESTS_RUN = "backtests:run", "Run and cancel backtests"
    LIVE_REQUEST = "live:request", "Ask staff for live trading (never approves it)"
    ADMIN = "admin", "Tenant administration: tokens, members, live accounts, settings"


ALL_SCOPES: tuple[str, ...] = tuple(TokenScope.values)
DEFAULT_SCOPES: tuple[str, ...] = (TokenScope.READ,)


def normalise_scopes(scopes: Iterable[str] | None) -> list[str]:
    """Known scopes in canonical order, always including `read`; unknown names raise ValueError."""
    given = set(scopes or ())
    unknown = sorted(given - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    given.add(TokenScope.READ)
    return [scope for scope in ALL_SCOPES if scope in given]


def required_scope(view: Any, method: str) -> str:
    """The scope a token needs to call `method` on `view` (a view may decide per request with
    `token_scope_for(method)`)."""
    decide = getattr(view, "token_scope_for", None)
    if decide is not None:
        decided = decide(method)
        if decided:
            return str(decided)
    by_method: dict[str, str] = getattr(view, "token_scopes", None) or {}
    if method in by_method:
        return by_method[method]
    if method in permissions.SAFE_METHODS:
        return TokenScope.READ
    return getattr(view, "write_scope", None) or TokenScope.ADMIN


def token_has_scope(token: Any, scope: str) -> bool:
    return scope in (getattr(token, "scopes", None) or ())


class TokenScopePermission(permissions.BasePermission):
    """403 naming the missing scope when a token calls an endpoint its scopes do not cover.

    The error code stays DRF's `permission_denied` (the documented 403 body); the detail names the
    scope."""

    def has_permission(self, request: Request, view: Any) -> bool:
        from tenants.models import ApiToken

        token = getattr(request, "auth", None)
        if not isinstance(token, ApiToken):
            return True
        scope = required_scope(view, request.method or "GET")
        if token_has_scope(token, scope):
            return True
        self.message = f"This API token lacks the '{scope}' scope needed for this request."
        return False
