"""What the MCP tools share: annotations, argument types, lookups by the caller's tenant, JSON shapes."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from django.db import close_old_connections
from mcp.server.mcpserver import Elicit
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from stratbox.backtests.serializers import BacktestOutput
from stratbox.instances.models import Mode
from stratbox.instances.selectors import instance_get
from stratbox.instances.serializers import InstanceOutput
from stratbox.mcp.calls import NotFound, untrusted
from stratbox.mcp.principal import Principal
from strategies_store.models import StrategyStyle
from strategies_store.selectors import strategy_get_by_key
from strategies_store.validation import UploadInvalid

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
CONTROL = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="Any unique string for this intended action; reuse it when retrying the same call.",
    ),
]
Money = Annotated[str, Field(description="A decimal amount as a string, e.g. '500.00'.")]


def instance_for(principal: Principal, instance_id: str) -> Any:
    instance = instance_get(tenant=principal.tenant, instance_id=instance_id)
    if instance is None:
        raise NotFound(f"Instance {instance_id} not found.")
    return instance


def strategy_for(principal: Principal, key: str) -> Any:
    definition = strategy_get_by_key(tenant=principal.tenant, key=key)
    if definition is None:
        raise NotFound(f"Strategy '{key}' not found.")
    return definition


def instance_json(instance: Any) -> dict[str, Any]:
    data = dict(InstanceOutput(instance).data)
    data["name"] = untrusted(data["name"])
    return data


def version_json(version: Any, *, source: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "number": version.number,
        "sha256": version.sha256,
        "config_schema": version.config_schema,
        "created_at": version.created_at,
    }
    if source:
        data["source"] = untrusted(version.source, "tenant code")
        if version.exit_source:
            data["exit_source"] = untrusted(version.exit_source, "tenant code")
    return data


def upload_issues(exc: UploadInvalid) -> list[dict[str, Any]]:
    return [
        {
            "file": i.attr,
            "code": i.code,
            "line": i.line,
            "col": i.col,
            "message": untrusted(i.message, "compiler"),
        }
        for i in exc.issues
    ]


def style_value(style: str) -> str:
    return StrategyStyle.SIGNAL_BUNDLE if style in ("signal", "signal_bundle") else StrategyStyle.TICK


class Confirm(BaseModel):
    confirm: bool = Field(description="Yes: switch the instance to active (it will place paper orders).")


def confirm_activation(instance_id: str, mode: str) -> Confirm | Elicit[Confirm]:
    """Going active needs the user's yes, asked by the server and bound to these exact arguments."""
    if mode != Mode.ACTIVE:
        return Confirm(confirm=True)
    return Elicit(
        f"Switch Stratbox instance {instance_id} to ACTIVE? It will start placing orders through the risk gate.",
        Confirm,
    )


async def db(fn: Any) -> Any:
    """Run a read in a worker thread (the ORM is synchronous), closing stale connections."""

    def run() -> Any:
        close_old_connections()
        try:
            return fn()
        finally:
            close_old_connections()

    return await anyio.to_thread.run_sync(run)


def cap(limit: int, maximum: int = 500) -> int:
    return max(1, min(int(limit), maximum))


def backtest_json(backtest: Any) -> dict[str, Any]:
    data = dict(BacktestOutput(backtest).data)
    data["version_number"] = backtest.version.number  # provenance: the code version it ran
    if data.get("error"):
        data["error"] = untrusted(data["error"], "tenant code")
    if "name" in data:
        data["name"] = untrusted(data["name"])
    return data
