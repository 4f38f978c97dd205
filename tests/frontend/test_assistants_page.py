"""Settings → AI assistants: scoped tokens for MCP clients, shown once inside the client snippet."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tenants.models import ApiToken
from tenants.services import token_create
from tests.factories import add_member


def _login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_lists_tokens_with_scopes_and_last_use(
    tenant: Any, user: Any, other_tenant: Any, other_user: Any
) -> None:
    token_create(tenant=tenant, user=user, name="claude", scopes=["backtests:run"])
    token_create(tenant=other_tenant, user=other_user, name="theirs-zq", scopes=["admin"])
    page = _login(user).get("/settings/assistants/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "claude" in html and "read, backtests:run" in html and "never" in html
    assert "theirs-zq" not in html
    assert "http://127.0.0.1:8000/mcp" in html and "stratbox.mcp" in html


def test_creating_a_token_shows_it_once_inside_the_snippets(tenant: Any, user: Any, settings: Any) -> None:
    settings.STRATBOX_MCP_URL = "https://strat.example.test/mcp"
    client = _login(user)
    response = client.post(
        "/settings/assistants/tokens/",
        {"token-name": "assistant", "token-scopes": ["strategies:write", "backtests:run"]},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(tenant=tenant, name="assistant")
    assert token.scopes == ["read", "strategies:write", "backtests:run"]
    html = response.content.decode()
    plaintext = html.split('id="new-token-value">')[1].split("<")[0]
    assert plaintext.startswith(f"sbx_{token.prefix}_")
    assert f"Bearer {plaintext}" in html  # the remote snippet
    assert html.count(plaintext) == 3  # the notice, the remote and the local (--token) snippets
    assert "https://strat.example.test/mcp" in html
    assert response["Cache-Control"] == "no-store"
    # Shown once: the next visit does not carry it.
    assert plaintext not in client.get("/settings/assistants/").content.decode()


def test_viewers_cannot_create_tokens(tenant: Any) -> None:
    viewer = add_member(tenant, role="viewer")
    response = _login(viewer).post("/settings/assistants/tokens/", {"token-name": "x"})
    assert response.status_code == 403
    assert not ApiToken.objects.filter(name="x").exists()
