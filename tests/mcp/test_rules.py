"""The rules every tool call obeys, over streamable HTTP: scopes (refusal names the scope), viewers,
another tenant's ids (not found), idempotency keys, the backtest meter, paper only, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from stratbox.backtests.models import Backtest
from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Account
from strategies_store.models import StrategyVersion
from tenants.models import AuditEvent
from tests.backtests.conftest import START, store_bars
from tests.factories import add_member
from tests.mcp.conftest import BACKTESTS_PER_DAY, Assistant, McpServer, issue
from tests.trading.conftest import make_instance

SOURCE = """from sandbox.sdk import Strategy


class S(Strategy):
    CONFIG_SCHEMA = {"n": {"type": "int", "default": 3, "min": 1, "max": 10}}

    def init(self):
        return {}

    def on_tick(self, tick):
        pass
"""
EVERY = ("strategies:write", "instances:write", "instances:control", "backtests:run", "live:request")


def _instance_args(market: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": "i",
        "strategy": "s",
        "market": market.pk,
        "total_capital": "1000.00",
        "capital_per_trade": "100.00",
        **extra,
    }


def test_a_read_only_token_is_refused_every_write_with_the_scope_named(
    mcp_server: McpServer, tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    instance = make_instance(tenant, paper_account, market, mode="observe")
    reader = Assistant(mcp_server, issue(tenant, user))
    assert reader.ok("list_strategies")["strategies"] is not None
    cases = {
        "upload_strategy": ({"key": "s", "name": "S", "source": SOURCE}, "strategies:write"),
        "create_instance": (_instance_args(market), "instances:write"),
        "upgrade_instance": ({"instance_id": str(instance.pk), "version": 2}, "instances:write"),
        "set_mode": ({"instance_id": str(instance.pk), "mode": "off"}, "instances:control"),
        "kill_switch": ({"engage": True}, "instances:control"),
        "run_backtest": (
            {"instance_id": str(instance.pk), "start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
            "backtests:run",
        ),
        "request_live": (
            {"instance_id": str(instance.pk), "live_account_id": str(paper_account.pk)},
            "live:request",
        ),
    }
    for tool, (arguments, scope) in cases.items():
        message = reader.error(tool, idempotency_key=f"k-{tool}", **arguments)
        assert f"'{scope}'" in message, (tool, message)
    instance.refresh_from_db()
    assert instance.mode == "observe"
    assert StrategyInstance.objects.filter(tenant=tenant).count() == 1
    assert not Backtest.objects.exists()
    refused = AuditEvent.objects.filter(tenant=tenant, action="mcp.call", after__outcome="refused")
    assert set(refused.values_list("target_id", flat=True)) == set(cases)


def test_viewers_only_read_whatever_the_scopes(
    mcp_server: McpServer, tenant: Any, market: Any, paper_account: Any
) -> None:
    viewer = add_member(tenant, role="viewer")
    assistant = Assistant(mcp_server, issue(tenant, viewer, *EVERY))
    message = assistant.error("upload_strategy", key="s", name="S", source=SOURCE, idempotency_key="v1")
    assert "read-only" in message
    assert assistant.ok("list_instances")["instances"] == []


def test_another_tenants_ids_are_not_found(
    mcp_server: McpServer,
    tenant: Any,
    user: Any,
    other_tenant: Any,
    other_user: Any,
    market: Any,
    paper_account: Any,
    other_paper_account: Any,
) -> None:
    theirs = make_instance(other_tenant, other_paper_account, market, mode="observe")
    before = (theirs.mode, theirs.name, theirs.version_id, theirs.config_revision)
    mine = Assistant(mcp_server, issue(tenant, user, *EVERY))
    for tool, arguments in {
        "get_logs": {"instance_id": str(theirs.pk)},
        "get_orders": {"instance_id": str(theirs.pk)},
        "get_runs": {"instance_id": str(theirs.pk)},
        "get_positions": {"instance_id": str(theirs.pk)},
        "get_track_record": {"instance_id": str(theirs.pk)},
        "get_strategy": {"key": theirs.strategy.key},
        "get_backtest": {"backtest_id": "00000000-0000-0000-0000-000000000001"},
        "set_mode": {"instance_id": str(theirs.pk), "mode": "off", "idempotency_key": "x1"},
        "pause": {"instance_id": str(theirs.pk), "idempotency_key": "x2"},
        "update_config": {"instance_id": str(theirs.pk), "name": "mine", "idempotency_key": "x3"},
        "upgrade_instance": {"instance_id": str(theirs.pk), "version": 1, "idempotency_key": "x4"},
        "request_live": {
            "instance_id": str(theirs.pk),
            "live_account_id": str(paper_account.pk),
            "idempotency_key": "x5",
        },
        "run_backtest": {
            "instance_id": str(theirs.pk),
            "start": "2024-01-01T00:00:00Z",
            "end": "2024-01-02T00:00:00Z",
            "idempotency_key": "x6",
        },
        "create_instance": {
            **_instance_args(market),
            "account": str(other_paper_account.pk),
            "idempotency_key": "x7",
        },
    }.items():
        message = mine.error(tool, **arguments)
        assert "not found" in message.lower(), (tool, message)
    theirs.refresh_from_db()
    assert (theirs.mode, theirs.name, theirs.version_id, theirs.config_revision) == before
    assert not StrategyInstance.objects.filter(tenant=tenant).exists()
    assert not Backtest.objects.exists()
    # Their strategy key is not one of mine: uploading under it creates my own strategy.
    mine.ok("upload_strategy", key=theirs.strategy.key, name="Mine", source=SOURCE, idempotency_key="own")
    assert StrategyVersion.objects.filter(definition__tenant=other_tenant).count() == 1


def test_idempotency_keys_make_one_object(
    mcp_server: McpServer, tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    assistant = Assistant(mcp_server, issue(tenant, user, *EVERY))
    first = assistant.ok("upload_strategy", key="s", name="S", source=SOURCE, idempotency_key="upload-a")
    again = assistant.ok("upload_strategy", key="s", name="S", source=SOURCE, idempotency_key="upload-a")
    assert again["replayed"] is True and again["version"] == first["version"]
    assert StrategyVersion.objects.filter(definition__key="s", definition__tenant=tenant).count() == 1

    created = assistant.ok("create_instance", **_instance_args(market), idempotency_key="create-a")
    retried = assistant.ok("create_instance", **_instance_args(market), idempotency_key="create-a")
    assert retried["instance"]["id"] == created["instance"]["id"]
    assert StrategyInstance.objects.filter(tenant=tenant).count() == 1

    # The same key with other arguments is refused; a new key is a new action.
    message = assistant.error(
        "create_instance", **_instance_args(market, name="other"), idempotency_key="create-a"
    )
    assert "different arguments" in message
    assistant.ok("create_instance", **_instance_args(market, name="second"), idempotency_key="create-b")
    assert StrategyInstance.objects.filter(tenant=tenant).count() == 2
    replays = AuditEvent.objects.filter(tenant=tenant, action="mcp.call", after__outcome="replayed")
    assert sorted(replays.values_list("target_id", flat=True)) == ["create_instance", "upload_strategy"]


def test_paper_only_and_capital_allocation_required(
    mcp_server: McpServer, tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    live = Account.objects.create(tenant=tenant, name="Live", kind="live", broker="ccxt:test")
    assistant = Assistant(mcp_server, issue(tenant, user, *EVERY))
    assistant.ok("upload_strategy", key="s", name="S", source=SOURCE, idempotency_key="u")
    message = assistant.error(
        "create_instance", **_instance_args(market), account=str(live.pk), idempotency_key="c1"
    )
    assert "paper" in message
    args = _instance_args(market)
    del args["total_capital"]
    result = assistant.call("create_instance", **args, idempotency_key="c2")
    assert result.is_error and "total_capital" in result.content[0].text
    # A config value the schema refuses is named.
    message = assistant.error(
        "create_instance", **_instance_args(market), config={"n": 99}, idempotency_key="c3"
    )
    assert "config.n" in message
    assert not StrategyInstance.objects.filter(tenant=tenant).exists()


def test_backtests_are_metered_per_tenant_with_a_structured_answer(
    mcp_server: McpServer, tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    store_bars(market, [100.0 + i % 7 for i in range(120)])
    instance = make_instance(tenant, paper_account, market, mode="off", total_capital=Decimal("1000"))
    assistant = Assistant(mcp_server, issue(tenant, user, *EVERY))
    window = {
        "instance_id": str(instance.pk),
        "start": START.isoformat(),
        "end": (START + timedelta(hours=1)).isoformat(),
    }
    for n in range(BACKTESTS_PER_DAY):
        assert assistant.ok("run_backtest", **window, idempotency_key=f"bt-{n}")["status"] == "queued"
    limited = assistant.ok("run_backtest", **window, idempotency_key="bt-over")
    assert limited["status"] == "limit_reached"
    assert (limited["used"], limited["limit"]) == (BACKTESTS_PER_DAY, BACKTESTS_PER_DAY)
    reset = datetime.fromisoformat(limited["reset_at"])
    assert reset > datetime.now(UTC) and (reset.hour, reset.minute) == (0, 0)
    assert Backtest.objects.filter(tenant=tenant).count() == BACKTESTS_PER_DAY
    # A replay of an already-run key does not spend another backtest.
    assert assistant.ok("run_backtest", **window, idempotency_key="bt-0")["replayed"] is True
    assert Backtest.objects.filter(tenant=tenant).count() == BACKTESTS_PER_DAY
