"""Tools for strategies: validate, upload, list and read code and versions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from stratbox.mcp.calls import NotFound, call, untrusted
from stratbox.mcp.principal import Principal
from stratbox.mcp.tools.common import (
    READ_ONLY,
    WRITE,
    IdempotencyKey,
    strategy_for,
    style_value,
    upload_issues,
    version_json,
)
from strategies_store.selectors import strategy_get_by_key, strategy_list, version_get, version_latest
from strategies_store.services import strategy_create, version_create
from strategies_store.validation import UploadInvalid, validate_upload
from tenants.scopes import TokenScope


def register(mcp: MCPServer) -> None:
    # --- strategies

    @mcp.tool(annotations=READ_ONLY)
    async def validate_strategy(
        source: Annotated[
            str, Field(description="The strategy code (tick style) or entry.py (signal style).")
        ],
        style: Literal["tick", "signal_bundle"] = "tick",
        exit_source: str | None = None,
        config_json: Annotated[str | None, Field(description="config.json of a signal bundle.")] = None,
    ) -> dict[str, Any]:
        """Compile and check a strategy in a sandbox host without storing anything: errors come back
        with file, line and column; on success the extracted CONFIG_SCHEMA."""

        def run(p: Principal) -> dict[str, Any]:
            try:
                validated = validate_upload(
                    style=style_value(style), source=source, exit_source=exit_source, config=config_json
                )
            except UploadInvalid as exc:
                return {"ok": False, "errors": upload_issues(exc)}
            return {"ok": True, "config_schema": validated.config_schema, "sha256": validated.sha256}

        return await call("validate_strategy", {"source": source, "style": style}, TokenScope.READ, run)

    @mcp.tool(annotations=WRITE)
    async def upload_strategy(
        key: Annotated[str, Field(description="Lower-case slug; an existing key gets a new version.")],
        name: str,
        source: str,
        idempotency_key: IdempotencyKey,
        thesis: Annotated[str, Field(description="Plain-English reason the strategy should work.")] = "",
        style: Literal["tick", "signal_bundle"] = "tick",
        exit_source: str | None = None,
        config_json: str | None = None,
        notes: str = "",
    ) -> dict[str, Any]:
        """Store a strategy: a new key creates it (version 1), an existing one of yours gets the next
        immutable version. Nothing is ever overwritten."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            existing = strategy_get_by_key(tenant=p.tenant, key=key)
            if existing is not None and existing.tenant_id == p.tenant.pk:
                version = version_create(
                    definition=existing,
                    author=p.user,
                    source=source,
                    exit_source=exit_source,
                    config=config_json,
                    thesis=thesis or None,
                    notes=notes,
                )
                created = False
            else:
                version = strategy_create(
                    tenant=p.tenant,
                    author=p.user,
                    key=key,
                    name=name,
                    style=style_value(style),
                    thesis=thesis or None,
                    source=source,
                    exit_source=exit_source,
                    config=config_json,
                    notes=notes,
                )
                created = True
            return {"strategy": key, "created": created, "version": version_json(version)}

        return await call("upload_strategy", args, TokenScope.STRATEGIES_WRITE, run)

    @mcp.tool(annotations=READ_ONLY)
    async def list_strategies() -> dict[str, Any]:
        """Your strategies and the built-in catalog, with their latest version numbers."""

        def run(p: Principal) -> dict[str, Any]:
            return {
                "strategies": [
                    {
                        "key": d.key,
                        "name": untrusted(d.name),
                        "style": d.style,
                        "builtin": d.tenant_id is None,
                        "latest_version": d.latest_number,
                    }
                    for d in strategy_list(tenant=p.tenant)
                ]
            }

        return await call("list_strategies", {}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_strategy(key: str, version: int | None = None) -> dict[str, Any]:
        """One strategy: thesis, versions, and one version's schema and source (the latest by default)."""

        def run(p: Principal) -> dict[str, Any]:
            definition = strategy_for(p, key)
            chosen = (
                version_latest(definition)
                if version is None
                else version_get(definition=definition, number=version)
            )
            if chosen is None:
                raise NotFound(f"Strategy '{key}' has no version {version}.")
            return {
                "key": definition.key,
                "name": untrusted(definition.name),
                "style": definition.style,
                "builtin": definition.tenant_id is None,
                "thesis": untrusted(definition.thesis),
                "versions": list(definition.versions.order_by("number").values_list("number", flat=True)),
                "version": version_json(chosen, source=True),
            }

        return await call("get_strategy", {"key": key, "version": version}, TokenScope.READ, run)
