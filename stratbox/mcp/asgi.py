"""Mount the MCP server at /mcp beside the Django ASGI app: one deployment, one port.

A path dispatcher, not Starlette `Mount`s: `Mount("/mcp")` next to a catch-all sends the exact
path `/mcp` to the catch-all. `/mcp` and the protected-resource metadata
(`/.well-known/oauth-protected-resource/mcp`) go to the SDK's app; everything else (HTTP and
websockets) to Django/Channels. A mounted app's lifespan never runs, so this dispatcher owns the
SDK's session manager (`_SessionManagerHolder`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from django.conf import settings
from mcp.server.transport_security import TransportSecuritySettings

from stratbox.mcp.server import build_server

MCP_PATH = "/mcp"
METADATA_PREFIX = "/.well-known/oauth-protected-resource"


def build_mcp_app() -> tuple[Any, Any]:
    server = build_server(http=True)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        # No per-process session state: any web replica answers any call (confirmations are
        # sealed with a key every replica shares).
        stateless_http=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(settings.STRATBOX_MCP_ALLOWED_HOSTS),
            allowed_origins=list(settings.STRATBOX_MCP_ALLOWED_ORIGINS),
        ),
    )
    return server, app


def is_mcp_path(path: str) -> bool:
    return path == MCP_PATH or path.startswith(MCP_PATH + "/") or path.startswith(METADATA_PREFIX)


class _SessionManagerHolder:
    """Runs the SDK's session manager for the life of the process.

    Started by the lifespan protocol when the server speaks it, else by the first MCP request
    (`make run`, the container and the tests run uvicorn with `--lifespan off`).
    """

    def __init__(self, server: Any) -> None:
        self.server = server
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.lock = asyncio.Lock()

    async def ensure(self) -> None:
        if self.ready.is_set():
            return
        async with self.lock:
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self._hold())
        task = self.task
        waiter = asyncio.ensure_future(self.ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not self.ready.is_set():
            waiter.cancel()
            raise RuntimeError("the MCP session manager did not start") from task.exception()

    async def _hold(self) -> None:
        async with self.server.session_manager.run():
            self.ready.set()
            await asyncio.Event().wait()  # until the process stops (or the task is cancelled)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


def with_mcp(django_app: Any) -> Any:
    """An ASGI app: the MCP endpoint and its metadata, else `django_app`."""
    server, mcp_app = build_mcp_app()
    holder = _SessionManagerHolder(server)

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(holder, receive, send)
        elif scope["type"] == "http" and is_mcp_path(scope.get("path", "")):
            await holder.ensure()
            await mcp_app(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return application


async def _lifespan(holder: _SessionManagerHolder, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await holder.ensure()
            except Exception as exc:  # reported to the server, which refuses to start
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await holder.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
