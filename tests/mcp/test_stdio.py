"""`python -m stratbox.mcp --token ...`: the same tools over stdio, for local clients."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from mcp import Client, StdioServerParameters

from stratbox.instances.models import StrategyInstance
from tenants.models import ApiToken, AuditEvent
from tenants.services import token_revoke
from tests.conftest import BASE_DIR, _test_database_url
from tests.mcp.conftest import issue

SOURCE = """from sandbox.sdk import Strategy


class S(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {}

    def on_tick(self, tick):
        pass
"""


def _params(token: str) -> StdioServerParameters:
    from django.conf import settings

    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "stratbox.mcp", "--token", token], env=env, cwd=str(BASE_DIR)
    )


def test_stdio_serves_the_tools_with_the_tokens_rights(
    transactional_db: None, tenant: Any, user: Any
) -> None:
    token = issue(tenant, user, "strategies:write")

    async def session() -> Any:
        async with Client(_params(token)) as client:
            tools = await client.list_tools()
            uploaded = await client.call_tool(
                "upload_strategy",
                {"key": "local", "name": "Local", "source": SOURCE, "idempotency_key": "l1"},
            )
            refused = await client.call_tool("kill_switch", {"engage": True, "idempotency_key": "k1"})
            return tools, uploaded, refused

    tools, uploaded, refused = asyncio.run(session())
    assert "upgrade_instance" in {t.name for t in tools.tools}
    assert not uploaded.is_error and uploaded.structured_content["version"]["number"] == 1
    assert refused.is_error and "'instances:control'" in refused.content[0].text
    assert AuditEvent.objects.filter(tenant=tenant, action="mcp.call", target_id="upload_strategy").exists()
    assert not StrategyInstance.objects.exists()

    # A revoked token: the process refuses to start.
    token_revoke(token=ApiToken.objects.get(name="assistant"), actor=user)
    proc = asyncio.run(_run_main(token))
    assert proc[0] == 2 and "revoked" in proc[1]


async def _run_main(token: str) -> tuple[int, str]:
    params = _params(token)
    process = await asyncio.create_subprocess_exec(
        params.command,
        *params.args,
        env=params.env,
        cwd=params.cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, err.decode()
