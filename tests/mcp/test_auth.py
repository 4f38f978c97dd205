"""The MCP endpoint over real HTTP: 401 with the metadata pointer, the protected-resource metadata,
allowed hosts, tools listed for a valid token, revocation at once."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.mcp.conftest import Assistant, McpServer, issue

INIT = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_unauthenticated_is_401_with_the_metadata_pointer(mcp_server: McpServer) -> None:
    for headers in (HEADERS, {**HEADERS, "Authorization": "Bearer sbx_deadbeef_not-a-token"}):
        response = httpx2.post(mcp_server.url, json=INIT, headers=headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer")
        assert f'resource_metadata="{mcp_server.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    metadata = httpx2.get(f"{mcp_server.base}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == mcp_server.url
    assert metadata["authorization_servers"] == [f"{mcp_server.base}/"] or metadata[
        "authorization_servers"
    ] == [mcp_server.base]
    assert "read" in metadata.get("scopes_supported", ["read"])


def test_a_foreign_host_header_is_refused(mcp_server: McpServer, tenant: Any, user: Any) -> None:
    token = issue(tenant, user)
    headers = {**HEADERS, "Authorization": f"Bearer {token}", "Host": "evil.example"}
    assert httpx2.post(mcp_server.url, json=INIT, headers=headers).status_code == 421
    headers = {**HEADERS, "Authorization": f"Bearer {token}", "Origin": "https://evil.example"}
    assert httpx2.post(mcp_server.url, json=INIT, headers=headers).status_code in (403, 421)


def test_a_valid_token_lists_the_tools_and_django_still_serves(
    mcp_server: McpServer, tenant: Any, user: Any
) -> None:
    assistant = Assistant(mcp_server, issue(tenant, user))

    async def listing(client: Any) -> Any:
        tools = await client.list_tools()
        resources = await client.list_resources()
        prompts = await client.list_prompts()
        return tools, resources, prompts, client.protocol_version

    tools, resources, prompts, version = assistant.run(listing)
    from tenants.models import ApiToken

    assert ApiToken.objects.get(name="assistant").last_used_at is not None  # shown on the settings page
    names = {t.name for t in tools.tools}
    assert {
        "validate_strategy",
        "upload_strategy",
        "list_strategies",
        "get_strategy",
        "create_instance",
        "update_config",
        "set_mode",
        "pause",
        "resume",
        "kill_switch",
        "run_backtest",
        "get_backtest",
        "get_runs",
        "get_logs",
        "get_orders",
        "get_positions",
        "get_track_record",
        "request_live",
        "upgrade_instance",
    } <= names
    assert not {n for n in names if "approve" in n or "live_trade" in n}
    by_name = {t.name: t for t in tools.tools}
    assert by_name["get_logs"].annotations.read_only_hint is True
    assert "idempotency_key" in by_name["upload_strategy"].input_schema["required"]
    assert {str(r.uri) for r in resources.resources} >= {
        "stratbox://guide/sdk",
        "stratbox://sandbox/allowed-modules",
    }
    assert [p.name for p in prompts.prompts] == ["build_strategy"]
    assert version
    # The same process still serves Django.
    assert httpx2.get(f"{mcp_server.base}/accounts/login/").status_code == 200


def test_revoking_the_token_stops_the_next_call(mcp_server: McpServer, tenant: Any, user: Any) -> None:
    from tenants.models import ApiToken
    from tenants.services import token_revoke

    token = issue(tenant, user)
    assistant = Assistant(mcp_server, token)
    assert assistant.ok("list_strategies")["strategies"] is not None
    token_revoke(token=ApiToken.objects.get(name="assistant"), actor=user)
    response = httpx2.post(mcp_server.url, json=INIT, headers={**HEADERS, "Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_the_endpoint_works_without_the_lifespan_protocol(asgi_server: Any, tenant: Any, user: Any) -> None:
    """`make run` and the container run uvicorn with --lifespan off: the first MCP request starts
    the SDK's session manager (the browser tests' server is started that way)."""
    token = issue(tenant, user)
    server = McpServer(base=asgi_server.url, proc=asgi_server.proc, log_path=asgi_server.log_path, queue="")
    assert Assistant(server, token).ok("list_strategies")["strategies"] == []
