"""Settings → AI assistants: tokens for MCP clients (scopes, last use, revoke) and the client config.

A token made here starts with the scopes an assistant needs to build and prove a strategy (read,
strategies:write, instances:write, backtests:run); control and live-request scopes are opt-in. The
plaintext is shown once, inside the config snippets, and never stored.
"""

from __future__ import annotations

import json
import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from frontend.access import tenant_view
from frontend.views.pages import TokenCreateForm
from tenants.scopes import TokenScope
from tenants.selectors import token_list_visible
from tenants.services import token_create

ASSISTANT_SCOPES = [
    TokenScope.READ,
    TokenScope.STRATEGIES_WRITE,
    TokenScope.INSTANCES_WRITE,
    TokenScope.BACKTESTS_RUN,
]
TOKEN_PLACEHOLDER = "sbx_…your token…"  # noqa: S105 - a placeholder, not a secret


def mcp_client_snippets(token: str) -> dict[str, str]:
    """The configuration a user pastes into an MCP client: remote (streamable HTTP) and local (stdio)."""
    remote = {
        "mcpServers": {
            "stratbox": {
                "type": "http",
                "url": settings.STRATBOX_MCP_URL,
                "headers": {"Authorization": f"Bearer {token}"},
            }
        }
    }
    local = {
        "mcpServers": {
            "stratbox": {
                "command": sys.executable,
                "args": ["-m", "stratbox.mcp", "--token", token],
                "cwd": str(settings.BASE_DIR),
            }
        }
    }
    return {"remote": json.dumps(remote, indent=2), "local": json.dumps(local, indent=2)}


def _page(
    request: HttpRequest,
    *,
    form: TokenCreateForm | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> HttpResponse:
    membership = request.membership  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/assistants.html",
        {
            "section": "settings",
            "tokens": token_list_visible(membership=membership).filter(revoked_at__isnull=True),
            "form": form
            or TokenCreateForm(prefix="token", initial={"name": "AI assistant", "scopes": ASSISTANT_SCOPES}),
            "new_token": new_token,
            "snippets": mcp_client_snippets(new_token or TOKEN_PLACEHOLDER),
            "mcp_url": settings.STRATBOX_MCP_URL,
            "scope_labels": dict(TokenScope.choices),
        },
        status=status,
    )


@tenant_view
def assistants(request: HttpRequest) -> HttpResponse:
    return _page(request)


@require_POST
@tenant_view(write=True)
def assistant_token_add(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST, prefix="token")
    if not form.is_valid():
        return _page(request, form=form, status=400)
    issued = token_create(
        tenant=request.tenant,  # type: ignore[attr-defined]
        user=request.user,
        name=form.cleaned_data["name"],
        scopes=form.cleaned_data["scopes"],
    )
    # Rendered, not redirected: the plaintext exists only in this response.
    response = _page(request, new_token=issued.plaintext)
    response["Cache-Control"] = "no-store"
    return response
