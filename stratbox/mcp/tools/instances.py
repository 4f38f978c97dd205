"""Tools for where instances run and for the instances themselves: create, configure, upgrade,
mode, pause and resume, the tenant's kill switch."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from stratbox.engine.selectors import runtime_status
from stratbox.engine.services import instance_pause, instance_resume, tenant_kill_switch
from stratbox.instances.models import Mode
from stratbox.instances.selectors import instance_list
from stratbox.instances.services import (
    instance_create,
    instance_set_mode,
    instance_update_config,
    instance_upgrade,
)
from stratbox.markets.selectors import market_list
from stratbox.mcp.calls import NotFound, call, untrusted
from stratbox.mcp.principal import Principal
from stratbox.mcp.tools.common import (
    CONTROL,
    READ_ONLY,
    WRITE,
    Confirm,
    IdempotencyKey,
    Money,
    confirm_activation,
    instance_for,
    instance_json,
)
from stratbox.trading.models import AccountKind
from stratbox.trading.selectors import account_get, account_list
from tenants.scopes import TokenScope


def register(mcp: MCPServer) -> None:
    # --- where instances run

    @mcp.tool(annotations=READ_ONLY)
    async def list_accounts_and_markets() -> dict[str, Any]:
        """Your accounts (paper or live) and the active markets, for create_instance and backtests."""

        def run(p: Principal) -> dict[str, Any]:
            return {
                "accounts": [
                    {"id": a.pk, "name": untrusted(a.name), "kind": a.kind, "balance": a.balance}
                    for a in account_list(tenant=p.tenant)
                ],
                "markets": [
                    {"id": m.pk, "code": m.code}
                    for m in market_list().filter(active=True).order_by("venue", "symbol")
                ],
            }

        return await call("list_accounts_and_markets", {}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def list_instances() -> dict[str, Any]:
        """Your instances with their mode, version and allocation."""

        def run(p: Principal) -> dict[str, Any]:
            return {"instances": [instance_json(i) for i in instance_list(tenant=p.tenant)[:200]]}

        return await call("list_instances", {}, TokenScope.READ, run)

    # --- instances

    @mcp.tool(annotations=WRITE)
    async def create_instance(
        name: str,
        strategy: Annotated[str, Field(description="Strategy key (yours or the catalog's).")],
        market: Annotated[int, Field(description="Market id (list_accounts_and_markets).")],
        total_capital: Money,
        capital_per_trade: Money,
        idempotency_key: IdempotencyKey,
        account: Annotated[
            str | None, Field(description="A paper account id; your first paper account if omitted.")
        ] = None,
        version: int | None = None,
        config: dict[str, Any] | None = None,
        max_positions: int | None = None,
        max_position_size: Money | None = None,
        max_daily_loss: Money | None = None,
        frequency_seconds: int | None = None,
        trigger: Annotated[
            Literal["interval", "quote"] | None,
            Field(
                description="interval: every frequency_seconds (default); quote: on every quote, coalesced."
            ),
        ] = None,
        mode: Literal["off", "observe"] = "observe",
    ) -> dict[str, Any]:
        """Deploy a strategy version on one of your PAPER accounts with a capital allocation. Starts
        off or observing (it thinks and records shadow orders, never trades)."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            if account is None:
                paper = (
                    account_list(tenant=p.tenant)
                    .filter(kind=AccountKind.PAPER)
                    .order_by("created_at")
                    .first()
                )
                if paper is None:
                    raise ToolError("You have no paper account.")
            else:
                paper = account_get(tenant=p.tenant, account_id=account)
                if paper is None:
                    raise NotFound(f"Account {account} not found.")
                if paper.kind != AccountKind.PAPER:
                    raise ToolError(
                        "Assistants deploy on paper accounts only; live trading needs request_live."
                    )
            instance = instance_create(
                tenant=p.tenant,
                actor=p.user,
                name=name,
                strategy_key=strategy,
                version_number=version,
                account_id=paper.pk,
                market_id=market,
                config=config,
                total_capital=Decimal(total_capital),
                capital_per_trade=Decimal(capital_per_trade),
                max_positions=max_positions,
                max_position_size=max_position_size,
                max_daily_loss=max_daily_loss,
                frequency_seconds=frequency_seconds,
                trigger=trigger,
                mode=mode,
            )
            return {"instance": instance_json(instance)}

        return await call("create_instance", args, TokenScope.INSTANCES_WRITE, run)

    @mcp.tool(annotations=WRITE)
    async def update_config(
        instance_id: str,
        idempotency_key: IdempotencyKey,
        config: Annotated[
            dict[str, Any] | None, Field(description="Merged into the config; null resets a field.")
        ] = None,
        name: str | None = None,
        total_capital: Money | None = None,
        capital_per_trade: Money | None = None,
        max_positions: int | None = None,
        max_position_size: Money | None = None,
        max_daily_loss: Money | None = None,
        frequency_seconds: int | None = None,
        trigger: Literal["interval", "quote"] | None = None,
    ) -> dict[str, Any]:
        """Change an instance's config or allocation (validated; a non-live field reloads it)."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_update_config(
                instance=instance_for(p, instance_id),
                actor=p.user,
                config=config,
                name=name,
                total_capital=total_capital,
                capital_per_trade=capital_per_trade,
                max_positions=max_positions,
                max_position_size=max_position_size,
                max_daily_loss=max_daily_loss,
                frequency_seconds=frequency_seconds,
                trigger=trigger,
            )
            return {"instance": instance_json(instance)}

        return await call("update_config", args, TokenScope.INSTANCES_WRITE, run)

    @mcp.tool(annotations=WRITE)
    async def upgrade_instance(
        instance_id: str,
        version: int,
        idempotency_key: IdempotencyKey,
        keep_state: bool = False,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run another version of the instance's strategy (an earlier one = rollback). The config is
        carried over (kept / added with defaults / removed, reported); the instance reloads with its
        state reset unless keep_state. A live instance stops trading until staff approve again."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance, report = instance_upgrade(
                instance=instance_for(p, instance_id),
                actor=p.user,
                version_number=version,
                keep_state=keep_state,
                config=config,
            )
            return {"instance": instance_json(instance), "report": report.as_json()}

        return await call("upgrade_instance", args, TokenScope.INSTANCES_WRITE, run)

    @mcp.tool(annotations=CONTROL)
    async def set_mode(
        instance_id: str,
        mode: Literal["off", "observe", "active"],
        idempotency_key: IdempotencyKey,
        confirmation: Annotated[Confirm, Resolve(confirm_activation)],
    ) -> dict[str, Any]:
        """off <-> observe powers an instance; observe -> active lets it trade (on paper: the paper
        broker). Going active asks the user to confirm first."""
        args = {"instance_id": instance_id, "mode": mode, "idempotency_key": idempotency_key}

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_for(p, instance_id)
            if mode == Mode.ACTIVE and not confirmation.confirm:
                raise ToolError("Not confirmed: the instance was left as it is.")
            return {"instance": instance_json(instance_set_mode(instance=instance, actor=p.user, mode=mode))}

        return await call("set_mode", args, TokenScope.INSTANCES_CONTROL, run)

    @mcp.tool(annotations=CONTROL)
    async def pause(instance_id: str, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        """Freeze a running instance (no ticks, no orders); its state is kept."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_for(p, instance_id)
            changed = instance_pause(instance=instance, actor=p.user)
            return {"paused": True, "changed": changed, "runtime": runtime_status(instance=instance)}

        return await call("pause", args, TokenScope.INSTANCES_CONTROL, run)

    @mcp.tool(annotations=CONTROL)
    async def resume(instance_id: str, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        """Resume a paused instance."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_for(p, instance_id)
            changed = instance_resume(instance=instance, actor=p.user)
            return {"paused": False, "changed": changed, "runtime": runtime_status(instance=instance)}

        return await call("resume", args, TokenScope.INSTANCES_CONTROL, run)

    @mcp.tool(annotations=CONTROL)
    async def kill_switch(engage: bool, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        """Pause every instance of the tenant at once (engage=true). Lifting it needs an owner."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            if not engage and p.membership.role != "owner":
                raise ToolError("Only the tenant's owners may lift the kill switch.")
            tenant = tenant_kill_switch(tenant=p.tenant, on=engage, actor=p.user)
            return {"engaged": tenant.killed_at is not None, "since": tenant.killed_at}

        return await call("kill_switch", args, TokenScope.INSTANCES_CONTROL, run)
