"""MCP fixtures: the real ASGI app (Django + the MCP server at /mcp) served by uvicorn on a loopback
port against the test database and Redis, and the official MCP client SDK talking to it over
streamable HTTP with a real API token.

The server starts once per session (with the lifespan protocol on, as a deployment may run it);
tests that use it get `transactional_db`, so the server sees their committed rows.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import _test_database_url
from tests.frontend.conftest import _live_server_process, asgi_server  # noqa: F401 - the --lifespan off server
from tests.loopback import free_port
from tests.uvicorn import served

BACKTESTS_PER_DAY = 3


@dataclass
class McpServer:
    base: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    queue: str

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="session")
def _mcp_server_process(django_db_setup: None, django_db_blocker: Any) -> Iterator[McpServer]:
    from django.conf import settings

    with django_db_blocker.unblock():
        database_url = _test_database_url()
    port = free_port()
    queue = f"test-mcp-{uuid.uuid4().hex[:10]}"
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "tests.frontend.live_settings",
        "CELERY_QUEUE": queue,
        "STRATBOX_MCP_URL": f"{base}/mcp",
        "STRATBOX_MCP_BACKTESTS_PER_DAY": str(BACKTESTS_PER_DAY),
    }
    ready = "/.well-known/oauth-protected-resource/mcp"
    with served("mcp-server", env, ready_path=ready, lifespan="on", port=port) as app:
        yield McpServer(base=app.base, proc=app.proc, log_path=app.log_path, queue=queue)


@pytest.fixture
def mcp_server(transactional_db: None, _mcp_server_process: McpServer) -> McpServer:
    if _mcp_server_process.proc.poll() is not None:
        pytest.fail(f"the MCP server died:\n{_mcp_server_process.log_tail()}")
    return _mcp_server_process


def issue(tenant: Any, user: Any, *scopes: str) -> str:
    from tenants.services import token_create

    return token_create(tenant=tenant, user=user, name="assistant", scopes=scopes).plaintext


class Assistant:
    """An MCP client session per call (the server is stateless): the way a test plays the assistant.

    Each call runs on its own event loop, so the test's Django ORM work stays synchronous.
    """

    def __init__(self, server: McpServer, token: str, confirm: bool | None = None) -> None:
        self.server = server
        self.token = token
        self.confirm = confirm
        self.asked: list[str] = []

    async def _elicit(self, context: Any, params: Any) -> Any:
        from mcp_types import ElicitResult

        self.asked.append(params.message)
        if self.confirm is None:
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept", content={"confirm": self.confirm})

    def _client(self) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
        return Client(
            streamable_http_client(self.server.url, http_client=http), elicitation_callback=self._elicit
        )

    def run(self, body: Any) -> Any:
        async def go() -> Any:
            async with self._client() as client:
                return await body(client)

        return asyncio.run(go())

    def call(self, tool: str, **arguments: Any) -> Any:
        """The raw CallToolResult."""
        return self.run(lambda client: client.call_tool(tool, arguments))

    def ok(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = self.call(tool, **arguments)
        assert not result.is_error, f"{tool}: {result.content}"
        return result.structured_content or json.loads(result.content[0].text)

    def error(self, tool: str, **arguments: Any) -> str:
        result = self.call(tool, **arguments)
        assert result.is_error, f"{tool} should have failed: {result.structured_content}"
        return result.content[0].text
