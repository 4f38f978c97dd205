"""Who is calling: an API token (its tenant, user, membership and scopes), over HTTP or stdio.

Over streamable HTTP the SDK's bearer middleware has already verified the token with
`StratboxTokenVerifier`; each call still re-reads it from the database, so a revocation stops the
very next call. Over stdio there is no HTTP layer: the token given with `--token` is used for every
call (and re-checked the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from django.db import close_old_connections
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from tenants.models import ApiToken, Membership
from tenants.scoping import membership_for_request
from tenants.selectors import token_get_active
from tenants.services import token_mark_used

_stdio_token: str | None = None


def use_stdio_token(plaintext: str) -> None:
    """The stdio entry point's token (one process = one token)."""
    global _stdio_token
    _stdio_token = plaintext


def current_plaintext() -> str | None:
    """The caller's token, read in the request's async context (before any thread hop)."""
    access = get_access_token()
    if access is not None:
        return access.token
    return _stdio_token


@dataclass(frozen=True)
class Principal:
    token: ApiToken
    membership: Membership

    @property
    def tenant(self):  # type: ignore[no-untyped-def]
        return self.membership.tenant

    @property
    def user(self):  # type: ignore[no-untyped-def]
        return self.token.user


class _TokenRequest:
    """Just enough of a request for `membership_for_request` (the REST API's rule, reused)."""

    def __init__(self, token: ApiToken) -> None:
        self.user = token.user
        self.auth = token
        self.session = None


def principal_for(plaintext: str | None) -> Principal | None:
    """The active token's principal, or None (unknown, revoked, or no longer a member)."""
    if not plaintext:
        return None
    token = token_get_active(plaintext=plaintext)
    if token is None:
        return None
    membership = membership_for_request(_TokenRequest(token))  # type: ignore[arg-type]
    if membership is None or membership.tenant_id != token.tenant_id:
        return None
    token_mark_used(token)  # "last used" on the AI assistants page
    return Principal(token=token, membership=membership)


def _verify(plaintext: str) -> AccessToken | None:
    close_old_connections()
    try:
        principal = principal_for(plaintext)
        if principal is None:
            return None
        token = principal.token
        return AccessToken(
            token=plaintext,
            client_id=f"stratbox-token:{token.pk}",
            scopes=list(token.scopes or []),
            subject=str(token.user_id),
            claims={"tenant": str(token.tenant_id)},
        )
    finally:
        close_old_connections()


class StratboxTokenVerifier:
    """The SDK's TokenVerifier over Stratbox API tokens (hashed, revocable, scoped)."""

    async def verify_token(self, token: str) -> AccessToken | None:
        return await anyio.to_thread.run_sync(_verify, token)
