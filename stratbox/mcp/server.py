"""The Stratbox MCP server: tools, resources and a prompt, each a thin call into a service.

Every tool runs through `calls.call` (token, scope, idempotency, audit) and looks objects up with
the tenant-taking selectors, so another tenant's id is "not found". Tool annotations are hints for
clients only; the rules live in the services and in `calls`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer, RequestStateSecurity

from stratbox.mcp.guide import INSTRUCTIONS
from stratbox.mcp.principal import StratboxTokenVerifier
from stratbox.mcp.tools import instances, observing, resources, strategies
from tenants.scopes import TokenScope


def _request_state_key() -> bytes:
    # Shared by every web process (and stable across restarts): a confirmation asked by one
    # replica verifies on another.
    return hashlib.sha256(f"stratbox-mcp-request-state:{settings.SECRET_KEY}".encode()).digest()


def _issuer_url() -> str:
    url = settings.STRATBOX_MCP_URL
    return url[: url.index("/", url.index("//") + 2)] if url.count("/") > 2 else url


def build_server(*, http: bool = True) -> MCPServer:
    """The server; `http=False` (stdio) has no bearer authentication (the process holds one token)."""
    auth_kwargs: dict[str, Any] = {}
    if http:
        auth_kwargs = {
            "token_verifier": StratboxTokenVerifier(),
            "auth": AuthSettings(
                issuer_url=_issuer_url(),
                resource_server_url=settings.STRATBOX_MCP_URL,
                required_scopes=[TokenScope.READ.value],
                # Our verifier looks the token up in our own database: it is ours by construction.
                validate_token_resource=False,
            ),
        }
    mcp = MCPServer(
        "stratbox",
        title="Stratbox",
        instructions=INSTRUCTIONS,
        request_state_security=RequestStateSecurity(keys=[_request_state_key()]),
        **auth_kwargs,
    )
    strategies.register(mcp)
    instances.register(mcp)
    observing.register(mcp)
    resources.register(mcp)
    return mcp
