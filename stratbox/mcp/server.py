"""The Stratbox MCP server: tools, resources and a prompt, each a thin call into a service.

Every tool runs through `calls.call` (token, scope, idempotency, audit) and looks objects up with
the tenant-taking selectors, so another tenant's id is "not found". Tool annotations are hints for
clients only; the rules live in the services and in `calls`.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal

import anyio.to_thread
from django.conf import settings
from django.db import close_old_connections
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Elicit, MCPServer, RequestStateSecurity, Resolve
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from stratbox.backtests.selectors import backtest_get, backtest_trade_list
from stratbox.backtests.serializers import BacktestOutput, BacktestTradeOutput
from stratbox.backtests.services import BacktestInvalid, BarsSpec, backtest_create
from stratbox.engine.models import Run
from stratbox.engine.selectors import run_list, runtime_status
from stratbox.engine.serializers import RunOutput
from stratbox.engine.services import instance_pause, instance_resume, tenant_kill_switch
from stratbox.governance.serializers import LiveRequestOutput
from stratbox.governance.services import instance_graduation, live_request_create
from stratbox.instances.models import Mode
from stratbox.instances.selectors import instance_get, instance_list
from stratbox.instances.serializers import InstanceOutput
from stratbox.instances.services import (
    instance_create,
    instance_set_mode,
    instance_update_config,
    instance_upgrade,
)
from stratbox.markets.selectors import market_get, market_list
from stratbox.mcp.calls import NotFound, backtest_meter_refund, backtest_meter_take, call, untrusted
from stratbox.mcp.guide import INSTRUCTIONS, SDK_GUIDE, WORKFLOW_PROMPT
from stratbox.mcp.principal import Principal, StratboxTokenVerifier
from stratbox.trading.models import AccountKind
from stratbox.trading.selectors import account_get, account_list, order_list, position_list
from stratbox.trading.serializers import OrderOutput
from strategies_store.models import StrategyStyle
from strategies_store.selectors import strategy_get_by_key, strategy_list, version_get, version_latest
from strategies_store.services import strategy_create, version_create
from strategies_store.validation import UploadInvalid, validate_upload
from tenants.scopes import TokenScope

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


def _request_state_key() -> bytes:
    # Shared by every web process (and stable across restarts): a confirmation asked by one
    # replica verifies on another.
    return hashlib.sha256(f"stratbox-mcp-request-state:{settings.SECRET_KEY}".encode()).digest()


def _issuer_url() -> str:
    url = settings.STRATBOX_MCP_URL
    return url[: url.index("/", url.index("//") + 2)] if url.count("/") > 2 else url


def build_server(*, http: bool = True) -> MCPServer:
    """The server; `http=False` (stdio) has no bearer authentication (the process holds one token)."""
    auth_kwargs: dict[str, Any] = {}
    if http:
        auth_kwargs = {
            "token_verifier": StratboxTokenVerifier(),
            "auth": AuthSettings(
                issuer_url=_issuer_url(),
                resource_server_url=settings.STRATBOX_MCP_URL,
                required_scopes=[TokenScope.READ.value],
                # Our verifier looks the token up in our own database: it is ours by construction.
                validate_token_resource=False,
            ),
        }
    mcp = MCPServer(
        "stratbox",
        title="Stratbox",
        instructions=INSTRUCTIONS,
        request_state_security=RequestStateSecurity(keys=[_request_state_key()]),
        **auth_kwargs,
    )
    _register(mcp)
    return mcp


# --- helpers ----------------------------------------------------------------------------------


def _instance(principal: Principal, instance_id: str) -> Any:
    instance = instance_get(tenant=principal.tenant, instance_id=instance_id)
    if instance is None:
        raise NotFound(f"Instance {instance_id} not found.")
    return instance


def _strategy(principal: Principal, key: str) -> Any:
    definition = strategy_get_by_key(tenant=principal.tenant, key=key)
    if definition is None:
        raise NotFound(f"Strategy '{key}' not found.")
    return definition


def _instance_json(instance: Any) -> dict[str, Any]:
    data = dict(InstanceOutput(instance).data)
    data["name"] = untrusted(data["name"])
    return data


def _version_json(version: Any, *, source: bool = False) -> dict[str, Any]:
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


def _issues(exc: UploadInvalid) -> list[dict[str, Any]]:
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


def _style(style: str) -> str:
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


# --- the tools --------------------------------------------------------------------------------


def _register(mcp: MCPServer) -> None:  # noqa: C901 - one flat list of thin tools
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
                    style=_style(style), source=source, exit_source=exit_source, config=config_json
                )
            except UploadInvalid as exc:
                return {"ok": False, "errors": _issues(exc)}
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
                    style=_style(style),
                    thesis=thesis or None,
                    source=source,
                    exit_source=exit_source,
                    config=config_json,
                    notes=notes,
                )
                created = True
            return {"strategy": key, "created": created, "version": _version_json(version)}

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
            definition = _strategy(p, key)
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
                "version": _version_json(chosen, source=True),
            }

        return await call("get_strategy", {"key": key, "version": version}, TokenScope.READ, run)

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
            return {"instances": [_instance_json(i) for i in instance_list(tenant=p.tenant)[:200]]}

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
                mode=mode,
            )
            return {"instance": _instance_json(instance)}

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
    ) -> dict[str, Any]:
        """Change an instance's config or allocation (validated; a non-live field reloads it)."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_update_config(
                instance=_instance(p, instance_id),
                actor=p.user,
                config=config,
                name=name,
                total_capital=total_capital,
                capital_per_trade=capital_per_trade,
                max_positions=max_positions,
                max_position_size=max_position_size,
                max_daily_loss=max_daily_loss,
                frequency_seconds=frequency_seconds,
            )
            return {"instance": _instance_json(instance)}

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
                instance=_instance(p, instance_id),
                actor=p.user,
                version_number=version,
                keep_state=keep_state,
                config=config,
            )
            return {"instance": _instance_json(instance), "report": report.as_json()}

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
            instance = _instance(p, instance_id)
            if mode == Mode.ACTIVE and not confirmation.confirm:
                raise ToolError("Not confirmed: the instance was left as it is.")
            return {"instance": _instance_json(instance_set_mode(instance=instance, actor=p.user, mode=mode))}

        return await call("set_mode", args, TokenScope.INSTANCES_CONTROL, run)

    @mcp.tool(annotations=CONTROL)
    async def pause(instance_id: str, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        """Freeze a running instance (no ticks, no orders); its state is kept."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
            changed = instance_pause(instance=instance, actor=p.user)
            return {"paused": True, "changed": changed, "runtime": runtime_status(instance=instance)}

        return await call("pause", args, TokenScope.INSTANCES_CONTROL, run)

    @mcp.tool(annotations=CONTROL)
    async def resume(instance_id: str, idempotency_key: IdempotencyKey) -> dict[str, Any]:
        """Resume a paused instance."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
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

    # --- backtests

    @mcp.tool(annotations=WRITE)
    async def run_backtest(
        start: Annotated[
            str, Field(description="ISO 8601 start of the stored bars, e.g. 2026-01-01T00:00:00Z.")
        ],
        end: str,
        idempotency_key: IdempotencyKey,
        instance_id: Annotated[
            str | None, Field(description="Reuse this instance's version and config.")
        ] = None,
        strategy: str | None = None,
        version: int | None = None,
        market: int | None = None,
        config: dict[str, Any] | None = None,
        interval_seconds: int = 60,
        starting_capital: Money | None = None,
    ) -> dict[str, Any]:
        """Queue a backtest over stored bars (an instance's, or a strategy version on a market).
        Metered per tenant and day: over the limit the answer is {status: limit_reached, ...}."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            from django.utils.dateparse import parse_datetime

            instance = chosen = bars_market = None
            if instance_id is not None:
                instance = _instance(p, instance_id)
                bars_market = instance.market
            else:
                if strategy is None:
                    raise ToolError("invalid: give instance_id, or strategy (+ version) and market.")
                definition = _strategy(p, strategy)
                chosen = (
                    version_latest(definition)
                    if version is None
                    else version_get(definition=definition, number=version)
                )
                if chosen is None:
                    raise NotFound(f"Strategy '{strategy}' has no version {version}.")
                bars_market = market_get(market_id=market) if market is not None else None
                if bars_market is None:
                    raise ToolError("invalid: market is required (an id from list_accounts_and_markets).")
            begin, finish = parse_datetime(start), parse_datetime(end)
            if begin is None or finish is None or begin >= finish:
                raise ToolError("invalid: start and end must be ISO 8601 datetimes with start < end.")
            limited = backtest_meter_take(p)
            if limited is not None:
                return limited
            try:
                backtest = backtest_create(
                    tenant=p.tenant,
                    actor=p.user,
                    bars=BarsSpec(
                        market=bars_market, start=begin, end=finish, interval_seconds=interval_seconds
                    ),
                    version=chosen,
                    instance=instance,
                    config=config,
                    starting_capital=Decimal(starting_capital) if starting_capital else None,
                )
            except BacktestInvalid:
                backtest_meter_refund(p)  # a refused backtest did not run
                raise
            return {"status": "queued", "backtest": _backtest_json(backtest)}

        return await call("run_backtest", args, TokenScope.BACKTESTS_RUN, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_backtest(backtest_id: str, trades_limit: int = 100) -> dict[str, Any]:
        """A backtest's status and progress; once done its metrics and trades (at most trades_limit)."""

        def run(p: Principal) -> dict[str, Any]:
            backtest = backtest_get(tenant=p.tenant, backtest_id=backtest_id)
            if backtest is None:
                raise NotFound(f"Backtest {backtest_id} not found.")
            trades = BacktestTradeOutput(
                backtest_trade_list(backtest=backtest)[: max(0, min(trades_limit, 1000))], many=True
            )
            return {"backtest": _backtest_json(backtest), "trades": trades.data}

        return await call("get_backtest", {"backtest_id": backtest_id}, TokenScope.READ, run)

    # --- observing

    @mcp.tool(annotations=READ_ONLY)
    async def get_runs(instance_id: str, limit: int = 20) -> dict[str, Any]:
        """The instance's recent executions with the version each ran (provenance) and errors."""

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
            runs = (
                run_list(tenant=p.tenant)
                .filter(instance=instance)
                .order_by("-started_at", "-id")[: _cap(limit)]
            )
            rows = []
            for row in RunOutput(runs, many=True).data:
                row = dict(row)
                row["error_message"] = untrusted(row["error_message"], "tenant code")
                rows.append(row)
            return {"runtime": runtime_status(instance=instance), "runs": rows}

        return await call("get_runs", {"instance_id": instance_id, "limit": limit}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_logs(instance_id: str, limit: int = 100) -> dict[str, Any]:
        """The instance's recent log lines (what its code printed), newest last."""

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
            lines: list[dict[str, Any]] = []
            runs = (
                Run.objects.filter(tenant=p.tenant, instance=instance)
                .exclude(logs=[])
                .order_by("-started_at", "-id")
                .values("started_at", "version__number", "logs", "error_code", "traceback")[:50]
            )
            for run_row in runs:
                for entry in reversed(run_row["logs"] or []):
                    lines.append(
                        {"at": run_row["started_at"], "version": run_row["version__number"], "entry": entry}
                    )
                if len(lines) >= _cap(limit, 1000):
                    break
            lines = list(reversed(lines[: _cap(limit, 1000)]))
            return {"lines": untrusted(lines, "tenant code")}

        return await call("get_logs", {"instance_id": instance_id, "limit": limit}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_orders(instance_id: str, shadow: bool | None = None, limit: int = 50) -> dict[str, Any]:
        """The instance's orders, newest first: real paper orders and (observe mode) shadow orders,
        with status, deny code and the version that placed each."""

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
            orders = order_list(tenant=p.tenant).filter(instance=instance)
            if shadow is not None:
                orders = orders.filter(is_shadow=shadow)
            data = []
            for row in OrderOutput(orders.order_by("-created_at")[: _cap(limit)], many=True).data:
                row = dict(row)
                row["tag"] = untrusted(row["tag"], "tenant code")
                data.append(row)
            return {"orders": data}

        return await call(
            "get_orders", {"instance_id": instance_id, "shadow": shadow, "limit": limit}, TokenScope.READ, run
        )

    @mcp.tool(annotations=READ_ONLY)
    async def get_positions(instance_id: str) -> dict[str, Any]:
        """The instance's open positions (paper and shadow)."""

        def run(p: Principal) -> dict[str, Any]:
            instance = _instance(p, instance_id)
            rows = position_list(tenant=p.tenant).filter(instance=instance, closed_at__isnull=True)
            return {
                "positions": [
                    {
                        "market": pos.market.code,
                        "qty": pos.qty,
                        "avg_price": pos.avg_price,
                        "cost_basis": pos.cost_basis,
                        "is_shadow": pos.is_shadow,
                        "opened_at": pos.opened_at,
                    }
                    for pos in rows
                ]
            }

        return await call("get_positions", {"instance_id": instance_id}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_track_record(instance_id: str) -> dict[str, Any]:
        """The paper track record (and the shadow one), and each graduation criterion for live trading."""

        def run(p: Principal) -> dict[str, Any]:
            graduation = instance_graduation(_instance(p, instance_id))
            graduation.pop("ledger", None)
            return graduation

        return await call("get_track_record", {"instance_id": instance_id}, TokenScope.READ, run)

    # --- live trading: ask, never decide

    @mcp.tool(annotations=WRITE)
    async def request_live(
        instance_id: str,
        live_account_id: str,
        idempotency_key: IdempotencyKey,
        note: str = "",
    ) -> dict[str, Any]:
        """Ask staff to let this paper instance's version and config trade on one of your live
        accounts. Refused with each unmet graduation criterion; staff approve or reject. No tool
        approves or goes live."""
        args = locals().copy()

        def run(p: Principal) -> dict[str, Any]:
            request = live_request_create(
                tenant=p.tenant,
                actor=p.user,
                instance=_instance(p, instance_id),
                live_account_id=live_account_id,
                note=note[:500],
            )
            data = dict(LiveRequestOutput(request).data)
            data["note"] = untrusted(data.get("note", ""))
            return {"request": data}

        return await call("request_live", args, TokenScope.LIVE_REQUEST, run)

    # --- resources and the prompt

    @mcp.resource("stratbox://guide/sdk", mime_type="text/markdown")
    def sdk_guide() -> str:
        """How to write a Stratbox strategy: styles, schema, rules, limits."""
        return SDK_GUIDE

    @mcp.resource("stratbox://sandbox/allowed-modules", mime_type="application/json")
    def allowed_modules() -> dict[str, Any]:
        """The modules (and names) a strategy may import."""
        from sandbox.policy import ALLOWED_IMPORTS

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

        return await _db(read)

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

        text = await _db(read)
        if text is None:
            raise ResourceNotFoundError(f"No catalog strategy '{key}'.")
        return text

    @mcp.prompt()
    def build_strategy(idea: str) -> str:
        """From an idea to a paper-trading strategy, in Stratbox's order of work."""
        return WORKFLOW_PROMPT.format(idea=idea)


async def _db(fn: Any) -> Any:
    """Run a read in a worker thread (the ORM is synchronous), closing stale connections."""

    def run() -> Any:
        close_old_connections()
        try:
            return fn()
        finally:
            close_old_connections()

    return await anyio.to_thread.run_sync(run)


def _cap(limit: int, maximum: int = 500) -> int:
    return max(1, min(int(limit), maximum))


def _backtest_json(backtest: Any) -> dict[str, Any]:
    data = dict(BacktestOutput(backtest).data)
    data["version_number"] = backtest.version.number  # provenance: the code version it ran
    if data.get("error"):
        data["error"] = untrusted(data["error"], "tenant code")
    if "name" in data:
        data["name"] = untrusted(data["name"])
    return data
