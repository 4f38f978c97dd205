"""Websocket authentication: browser sessions, and API tokens for scripts and other services.

`websocket_stack(inner)` is what `stratbox.asgi` mounts in front of the websocket routes:

    TokenOrOriginValidator( AuthMiddlewareStack( TokenAuthMiddleware( inner ) ) )

- A browser authenticates with its session cookie. Cookies are ambient credentials, so such a
  handshake must come from one of our own origins (`ALLOWED_HOSTS`): cross-site websocket
  hijacking is refused at the handshake (HTTP 403).
- An API client sends `Authorization: Bearer <token>` (or `?token=<token>` where it cannot set
  headers). The token is an explicit credential, not an ambient one, so the Origin check does not
  apply to it and non-browser clients may omit the header.
- A token that is unknown or revoked never falls back to the session: the scope is marked
  `auth_failed` and the consumer closes with 4401.

The consumer, not the middleware, decides what an authenticated caller may subscribe to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from tenants.selectors import token_get_active

Scope = dict[str, Any]


def token_from_scope(scope: Scope) -> str | None:
    """The plaintext token of a `Bearer` Authorization header, else of a `token` query parameter."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin1").split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                return parts[1]
            return ""  # a malformed Authorization header is a failed login, not an anonymous one
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    values = query.get("token")
    return values[0] if values else None


@database_sync_to_async
def _token_lookup(plaintext: str) -> Any:
    return token_get_active(plaintext=plaintext) if plaintext else None


class TokenAuthMiddleware:
    """Sets `scope["user"]` and `scope["api_token"]` from an API token, when one is presented."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        plaintext = token_from_scope(scope)
        if plaintext is not None:
            scope = dict(scope)
            token = await _token_lookup(plaintext)
            scope["api_token"] = token
            if token is None:
                scope["user"] = AnonymousUser()
                scope["auth_failed"] = "invalid_token"
            else:
                scope["user"] = token.user
        return await self.inner(scope, receive, send)


class TokenOrOriginValidator:
    """Origin check for cookie-authenticated handshakes; token-authenticated ones skip it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.origin_checked = AllowedHostsOriginValidator(inner)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket" and token_from_scope(scope) is not None:
            return await self.inner(scope, receive, send)
        return await self.origin_checked(scope, receive, send)


def websocket_stack(inner: Any) -> Any:
    return TokenOrOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))
