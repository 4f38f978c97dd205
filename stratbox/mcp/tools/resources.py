"""The MCP resources (the SDK guide, allowed modules, the catalog examples) and the prompt."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from sandbox.policy import ALLOWED_IMPORTS
from stratbox.mcp.guide import SDK_GUIDE, WORKFLOW_PROMPT
from stratbox.mcp.tools.common import (
    db,
)
from strategies_store.selectors import strategy_list, version_latest


def register(mcp: MCPServer) -> None:
    # --- resources and the prompt

    @mcp.resource("stratbox://guide/sdk", mime_type="text/markdown")
    def sdk_guide() -> str:
        """How to write a Stratbox strategy: styles, schema, rules, limits."""
        return SDK_GUIDE

    @mcp.resource("stratbox://sandbox/allowed-modules", mime_type="application/json")
    def allowed_modules() -> dict[str, Any]:
        """The modules (and names) a strategy may import."""

        return {module: sorted(names) for module, names in sorted(ALLOWED_IMPORTS.items())}

    @mcp.resource("stratbox://examples", mime_type="application/json")
    async def examples_index() -> dict[str, Any]:
        """The built-in catalog strategies (read one at stratbox://examples/{key})."""

        def read() -> dict[str, Any]:
            return {
                "examples": [
                    {"key": d.key, "name": d.name, "style": d.style, "uri": f"stratbox://examples/{d.key}"}
                    for d in strategy_list(tenant=None, builtin=True)
                ]
            }

        return await db(read)

    @mcp.resource("stratbox://examples/{key}", mime_type="text/plain")
    async def example(key: str) -> str:
        """A catalog strategy's latest source (a worked example of the SDK)."""

        def read() -> str | None:
            definition = strategy_list(tenant=None, builtin=True).filter(key=key).first()
            version = version_latest(definition) if definition is not None else None
            if definition is None or version is None:
                return None
            parts = [
                f"# {definition.name} ({definition.style})\n# thesis: {definition.thesis}\n",
                version.source,
            ]
            if version.exit_source:
                parts += ["\n# --- exit.py ---\n", version.exit_source]
            return "".join(parts)

        text = await db(read)
        if text is None:
            raise ResourceNotFoundError(f"No catalog strategy '{key}'.")
        return text

    @mcp.prompt()
    def build_strategy(idea: str) -> str:
        """From an idea to a paper-trading strategy, in Stratbox's order of work."""
        return WORKFLOW_PROMPT.format(idea=idea)
