"""Every MCP tool, walked from the server's own tool list: another tenant's ids are "not found" and
their data never shows. A tool added later with an id parameter is covered without editing this.

Over streamable HTTP with the official client against the running server (tests/mcp/conftest.py).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from stratbox.backtests.services import BarsSpec, backtest_create
from stratbox.engine.models import Run
from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Account, Order
from tests.backtests.conftest import START, store_bars
from tests.factories import make_tenant, make_user
from tests.mcp.conftest import Assistant, McpServer, _mcp_server_process, issue, mcp_server  # noqa: F401 - fixtures
from tests.trading.conftest import make_instance

MARKER = "zqother"
EVERY = ("strategies:write", "instances:write", "instances:control", "backtests:run", "live:request")
ID_PARAMS = ("instance_id", "backtest_id")


def _value(name: str, spec: dict[str, Any], theirs: dict[str, Any], n: int) -> Any:
    if name in theirs:
        return theirs[name]
    if name == "idempotency_key":
        return f"matrix-{n}"
    kinds = {t.get("type") for t in spec.get("anyOf", [spec])}
    if "enum" in spec:
        return spec["enum"][0]
    if "integer" in kinds:
        return 1
    if "boolean" in kinds:
        return True
    if "object" in kinds:
        return {}
    return {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}.get(name, "x")


def test_every_tool_with_an_id_answers_not_found_for_another_tenants_objects(
    mcp_server: McpServer,  # noqa: F811 - the fixture imported above
    tenant: Any,
    user: Any,
    market: Any,
    paper_account: Any,
    celery_queue: str,
) -> None:
    other_owner = make_user(f"{MARKER}@globex.test")
    other = make_tenant(f"{MARKER} Globex", owner=other_owner)
    other_paper = Account.objects.create(tenant=other, name=f"{MARKER} paper", kind="paper")
    other_live = Account.objects.create(tenant=other, name=f"{MARKER} live", kind="live", broker="ccxt:test")
    theirs = make_instance(other, other_paper, market, mode="observe", name=f"{MARKER} instance")
    store_bars(market, [100.0 + i % 5 for i in range(90)])
    backtest = backtest_create(
        tenant=other,
        actor=other_owner,
        bars=BarsSpec(market=market, start=START, end=START + timedelta(hours=1)),
        instance=theirs,
        name=f"{MARKER} backtest",
    )
    before = (
        StrategyInstance.objects.filter(tenant=other)
        .values_list("mode", "version_id", "config_revision", "name")
        .get(),
        Order.objects.filter(tenant=other).count(),
        Run.objects.filter(tenant=other).count(),
    )
    values = {
        "instance_id": str(theirs.pk),
        "backtest_id": str(backtest.pk),
        "live_account_id": str(other_live.pk),
        "account": str(other_paper.pk),
        "key": theirs.strategy.key,
    }
    mine = Assistant(mcp_server, issue(tenant, user, *EVERY))
    tools = mine.run(lambda client: client.list_tools()).tools
    checked = []
    for n, tool in enumerate(tools):
        schema = tool.input_schema
        properties: dict[str, Any] = schema.get("properties", {})
        if not any(p in properties for p in ID_PARAMS) and tool.name != "get_strategy":
            continue
        arguments = {
            name: _value(name, properties[name], values, n)
            for name in properties
            if name in schema.get("required", []) or name in values
        }
        result = mine.call(tool.name, **arguments)
        text = json.dumps([c.model_dump() for c in result.content])
        assert result.is_error and "not found" in text.lower(), (tool.name, text)
        assert MARKER not in text, tool.name
        checked.append(tool.name)
    assert {"get_logs", "get_orders", "upgrade_instance", "set_mode", "get_backtest", "request_live"} <= set(
        checked
    )

    # The listing tools never show the other tenant's objects.
    for name in ("list_strategies", "list_instances", "list_accounts_and_markets"):
        assert MARKER not in json.dumps(mine.ok(name)), name
    after = (
        StrategyInstance.objects.filter(tenant=other)
        .values_list("mode", "version_id", "config_revision", "name")
        .get(),
        Order.objects.filter(tenant=other).count(),
        Run.objects.filter(tenant=other).count(),
    )
    assert after == before
