"""Websocket authentication: browser sessions, and API tokens for scripts and other services.

`websocket_stack(inner)` is what `stratbox.asgi` mounts in front of the websocket routes:

    TokenOrOriginValidator( AuthMiddlewareStack( TokenAuthMiddleware( inner ) ) )

- A browser authenticates with its session cookie. Cookies are ambient credentials, so such a
  handshake must come from our own origin — the same scheme, host *and port* as the request (its
  Host, which must be in `ALLOWED_HOSTS`), or one listed in `CSRF_TRUSTED_ORIGINS`: a page on
  another port of the same host is another origin. Cross-site websocket hijacking is refused at
  the handshake (HTTP 403).
- An API client sends `Authorization: Bearer <token>` (or `?token=<token>` where it cannot set
  headers). The token is an explicit credential, not an ambient one, so the Origin check does not
  apply to it and non-browser clients may omit the header.
- A token that is unknown or revoked never falls back to the session: the scope is marked
  `auth_failed` and the consumer closes with 4401.

The consumer, not the middleware, decides what an authenticated caller may subscribe to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http.request import split_domain_port, validate_host

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


Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> Origin | None:
    parts = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin1"))
    return None


def origin_allowed(scope: Scope) -> bool:
    """Whether the handshake's Origin is our own: its scheme, host and port equal the request's
    (Host header, which must be an allowed host), or it is one of `CSRF_TRUSTED_ORIGINS`."""
    raw = _header(scope, b"origin")
    if not raw or "://" not in raw:
        return False
    scheme, _, netloc = raw.partition("://")
    origin = _origin(scheme.lower(), netloc)
    if origin is None:
        return False
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        t_scheme, _, t_netloc = trusted.partition("://")
        if _origin(t_scheme.lower(), t_netloc) == origin:
            return True
    host = _header(scope, b"host")
    if not host:
        return False
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") in ("wss", "https")
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:  # behind a TLS-terminating proxy that says so (as Django's request.is_secure())
        name, expected = proxy
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode()
        secure = secure or _header(scope, header) == expected
    return _origin("https" if secure else "http", host) == origin


class TokenOrOriginValidator:
    """Origin check for cookie-authenticated handshakes; token-authenticated ones skip it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket" and token_from_scope(scope) is not None:
            return await self.inner(scope, receive, send)
        if scope.get("type") == "websocket" and not origin_allowed(scope):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.inner(scope, receive, send)


def websocket_stack(inner: Any) -> Any:
    return TokenOrOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))
