"""Tools to watch a strategy's record: backtests, runs, logs, orders, positions, the track
record, and asking for live trading (a request, never a decision)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from django.utils.dateparse import parse_datetime
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from stratbox.backtests.selectors import backtest_get, backtest_trade_list
from stratbox.backtests.serializers import BacktestTradeOutput
from stratbox.backtests.services import BacktestInvalid, BarsSpec, backtest_create
from stratbox.engine.models import Run
from stratbox.engine.selectors import run_list, runtime_status
from stratbox.engine.serializers import RunOutput
from stratbox.governance.serializers import LiveRequestOutput
from stratbox.governance.services import instance_graduation, live_request_create
from stratbox.markets.selectors import market_get
from stratbox.mcp.calls import NotFound, backtest_meter_refund, backtest_meter_take, call, untrusted
from stratbox.mcp.principal import Principal
from stratbox.mcp.tools.common import (
    READ_ONLY,
    WRITE,
    IdempotencyKey,
    Money,
    backtest_json,
    cap,
    instance_for,
    strategy_for,
)
from stratbox.trading.selectors import order_list, position_list
from stratbox.trading.serializers import OrderOutput
from strategies_store.selectors import version_get, version_latest
from tenants.scopes import TokenScope


def register(mcp: MCPServer) -> None:
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
            instance = chosen = bars_market = None
            if instance_id is not None:
                instance = instance_for(p, instance_id)
                bars_market = instance.market
            else:
                if strategy is None:
                    raise ToolError("invalid: give instance_id, or strategy (+ version) and market.")
                definition = strategy_for(p, strategy)
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
            return {"status": "queued", "backtest": backtest_json(backtest)}

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
            return {"backtest": backtest_json(backtest), "trades": trades.data}

        return await call("get_backtest", {"backtest_id": backtest_id}, TokenScope.READ, run)

    # --- observing

    @mcp.tool(annotations=READ_ONLY)
    async def get_runs(instance_id: str, limit: int = 20) -> dict[str, Any]:
        """The instance's recent executions with the version each ran (provenance) and errors."""

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_for(p, instance_id)
            runs = (
                run_list(tenant=p.tenant)
                .filter(instance=instance)
                .order_by("-started_at", "-id")[: cap(limit)]
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
            instance = instance_for(p, instance_id)
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
                if len(lines) >= cap(limit, 1000):
                    break
            lines = list(reversed(lines[: cap(limit, 1000)]))
            return {"lines": untrusted(lines, "tenant code")}

        return await call("get_logs", {"instance_id": instance_id, "limit": limit}, TokenScope.READ, run)

    @mcp.tool(annotations=READ_ONLY)
    async def get_orders(instance_id: str, shadow: bool | None = None, limit: int = 50) -> dict[str, Any]:
        """The instance's orders, newest first: real paper orders and (observe mode) shadow orders,
        with status, deny code and the version that placed each."""

        def run(p: Principal) -> dict[str, Any]:
            instance = instance_for(p, instance_id)
            orders = order_list(tenant=p.tenant).filter(instance=instance)
            if shadow is not None:
                orders = orders.filter(is_shadow=shadow)
            data = []
            for row in OrderOutput(orders.order_by("-created_at")[: cap(limit)], many=True).data:
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
            instance = instance_for(p, instance_id)
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
            graduation = instance_graduation(instance_for(p, instance_id))
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
                instance=instance_for(p, instance_id),
                live_account_id=live_account_id,
                note=note[:500],
            )
            data = dict(LiveRequestOutput(request).data)
            data["note"] = untrusted(data.get("note", ""))
            return {"request": data}

        return await call("request_live", args, TokenScope.LIVE_REQUEST, run)
