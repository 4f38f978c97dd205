"""The scripted conversation, end to end, with the official MCP client over streamable HTTP.

An assistant validates a broken strategy (line and column), fixes it, uploads it, deploys it on
paper in observe mode, backtests it (a real Celery worker), reads its logs and orders, switches it
to active (the user confirms through the client), requests live trading (the staff queue shows it)
and upgrades it to v2 (config migrated, runs record v1 then v2, the pending approval is void).
The engine's ticks run here, in-process, through the real engine and sandbox hosts.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Account
from strategies_store.models import StrategyDefinition
from tenants.models import AuditEvent
from tests.backtests.conftest import START, store_bars
from tests.conftest import WorkerProcess
from tests.engine.conftest import set_quote
from tests.factories import client_for, make_tenant, make_user
from tests.governance.conftest import graduate
from tests.mcp.conftest import Assistant, McpServer, issue

BROKEN = """from sandbox.sdk import Strategy


class Dip(Strategy):
    CONFIG_SCHEMA = {
        "qty": {"type": "float", "default": 0.01, "min": 0.001, "max": 10},
        "window": {"type": "int", "default": 5, "min": 2, "max": 100},
    }

    def init(self):
        return {"n": 0}

    def on_tick(self, tick)
        self.state["n"] += 1
"""

FIXED = BROKEN.replace("def on_tick(self, tick)\n", "def on_tick(self, tick):\n") + (
    "        self.context.log(f\"tick {self.state['n']} at {tick.price}\")\n"
    '        self.context.place_order("buy", self.config["qty"], tag="dip")\n'
)

V2 = FIXED.replace(
    '"window": {"type": "int", "default": 5, "min": 2, "max": 100},',
    '"threshold": {"type": "float", "default": 0.02, "min": 0, "max": 1},',
).replace("tick {self.state['n']}", "v2 tick {self.state['n']}")

SCOPES = ("strategies:write", "instances:write", "instances:control", "backtests:run", "live:request")


@pytest.fixture(autouse=True)
def _zero_costs(settings: Any) -> None:
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0


def _tick(instance_id: Any, slot: float) -> None:
    outcome = tick_run(instance_id, slot)
    assert outcome.status == "ok", outcome


def test_the_scripted_conversation(
    mcp_server: McpServer, tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    store_bars(market, [100 + (i % 17) - (i % 5) * 0.7 for i in range(400)])
    live_account = Account.objects.create(tenant=tenant, name="Live", kind="live", broker="ccxt:test")
    assistant = Assistant(mcp_server, issue(tenant, user, *SCOPES))

    # 1. A broken strategy: the error has its line and column; nothing is stored.
    report = assistant.ok("validate_strategy", source=BROKEN)
    assert report["ok"] is False
    error = report["errors"][0]
    assert (error["code"], error["line"]) == ("COMPILE_ERROR", 13) and error["col"] is not None
    assert error["message"]["trust"] == "untrusted"
    assert not StrategyDefinition.objects.filter(tenant=tenant).exists()

    # 2. Fixed, it validates and shows its schema; 3. uploaded, it is version 1.
    assert assistant.ok("validate_strategy", source=FIXED)["config_schema"]["window"]["default"] == 5
    upload = assistant.ok(
        "upload_strategy",
        key="dip",
        name="Dip buyer",
        source=FIXED,
        thesis="Buys small dips.",
        idempotency_key="up-1",
    )
    assert (upload["created"], upload["version"]["number"]) == (True, 1)

    # 4. Deployed on paper, observing.
    where = assistant.ok("list_accounts_and_markets")
    assert any(a["id"] == str(paper_account.pk) and a["kind"] == "paper" for a in where["accounts"])
    created = assistant.ok(
        "create_instance",
        name="Dip on BTC",
        strategy="dip",
        market=market.pk,
        total_capital="5000.00",
        capital_per_trade="1000.00",
        max_position_size="1000.00",
        max_daily_loss="1000.00",
        max_positions=5,
        config={"window": 7},
        idempotency_key="inst-1",
    )
    instance_id = created["instance"]["id"]
    instance = StrategyInstance.objects.get(pk=instance_id)
    assert (instance.mode, instance.account_id, instance.config["window"]) == ("observe", paper_account.pk, 7)

    # The engine runs two ticks (shadow orders, log lines).
    set_quote(market, 100.0)
    reconcile([instance_id])
    base = runtime.rt_get(instance_id)["next_due_at"]
    _tick(instance_id, base)
    _tick(instance_id, base + 1)

    # 5. A backtest of the instance, run by a real worker.
    worker = WorkerProcess(name=f"mcp{int(time.time()) % 100000}", queue=mcp_server.queue).start()
    try:
        queued = assistant.ok(
            "run_backtest",
            instance_id=instance_id,
            start=START.isoformat(),
            end=(START.replace(hour=6)).isoformat(),
            idempotency_key="bt-1",
        )
        assert queued["status"] == "queued"
        backtest_id = queued["backtest"]["id"]
        deadline = time.monotonic() + 90
        while True:
            result = assistant.ok("get_backtest", backtest_id=backtest_id)
            if result["backtest"]["status"] in ("succeeded", "failed"):
                break
            assert time.monotonic() < deadline, result["backtest"]
            time.sleep(0.5)
    finally:
        worker.stop()
    assert result["backtest"]["status"] == "succeeded", result["backtest"]
    assert result["backtest"]["progress"]["done"] == result["backtest"]["progress"]["total"] > 0
    metrics = result["backtest"]["results"]
    assert metrics["num_trades"] + metrics["open_trades"] > 0 and "win_rate" in metrics
    assert result["backtest"]["version_number"] == 1
    assert result["trades"], "the strategy buys every bar: the backtest has trades"

    # 6. Logs (untrusted text from the code) and shadow orders, with the version that placed them.
    logs = assistant.ok("get_logs", instance_id=instance_id)["lines"]
    assert logs["trust"] == "untrusted"
    assert [line["entry"]["msg"] for line in logs["content"]] == ["tick 1 at 100.0", "tick 2 at 100.0"]
    orders = assistant.ok("get_orders", instance_id=instance_id)["orders"]
    assert len(orders) == 2 and all(o["is_shadow"] and o["version_number"] == 1 for o in orders)

    # 7. Active needs the user's yes, asked by the server: cancelled -> nothing changes.
    refusing = Assistant(mcp_server, assistant.token, confirm=None)
    assert refusing.call("set_mode", instance_id=instance_id, mode="active", idempotency_key="act-1").is_error
    assert instance_id in refusing.asked[0]
    assert StrategyInstance.objects.get(pk=instance_id).mode == "observe"
    confirming = Assistant(mcp_server, assistant.token, confirm=True)
    done = confirming.ok("set_mode", instance_id=instance_id, mode="active", idempotency_key="act-2")
    assert done["instance"]["mode"] == "active" and len(confirming.asked) == 1

    # 8. A paper record that graduates (real paper round trips), then the request for live trading.
    graduate(StrategyInstance.objects.get(pk=instance_id))
    record = assistant.ok("get_track_record", instance_id=instance_id)
    assert record["eligible"] is True
    asked = assistant.ok(
        "request_live",
        instance_id=instance_id,
        live_account_id=str(live_account.pk),
        idempotency_key="live-1",
    )
    request_id = asked["request"]["id"]
    staff = make_user("staff@stratbox.test", is_staff=True)
    staff_api = client_for(staff, make_tenant("Ops", owner=staff))
    queue = staff_api.get("/api/v1/staff/live-requests/").json()["results"]
    assert [(r["id"], r["status"]) for r in queue] == [(request_id, "pending")]

    # 9. Version 2, and the upgrade: config migrated, runs record v1 then v2.
    v2 = assistant.ok("upload_strategy", key="dip", name="Dip buyer", source=V2, idempotency_key="up-2")
    assert (v2["created"], v2["version"]["number"]) == (False, 2)
    upgraded = assistant.ok("upgrade_instance", instance_id=instance_id, version=2, idempotency_key="upg-1")
    assert upgraded["report"]["config"] == {
        "kept": {"qty": 0.01},
        "added": {"threshold": 0.02},
        "removed": {"window": 7},
    }
    reconcile([instance_id])
    _tick(instance_id, runtime.rt_get(instance_id)["next_due_at"])
    runs = assistant.ok("get_runs", instance_id=instance_id)["runs"]
    assert [r["version_number"] for r in runs] == [2, 1, 1]
    assert assistant.ok("get_logs", instance_id=instance_id)["lines"]["content"][-1]["entry"][
        "msg"
    ].startswith("v2 tick 1")

    # The approval staff were asked for covers v1: it can no longer be granted.
    refused = staff_api.post(f"/api/v1/staff/live-requests/{request_id}/approve/", {}, format="json")
    assert refused.status_code == 409 and refused.json()["errors"][0]["code"] == "REQUEST_STALE"

    # Every call is in the audit log with the token, the tool and an argument digest.
    calls = AuditEvent.objects.filter(tenant=tenant, action="mcp.call")
    tools = set(calls.values_list("target_id", flat=True))
    assert {
        "validate_strategy",
        "upload_strategy",
        "create_instance",
        "run_backtest",
        "set_mode",
        "request_live",
        "upgrade_instance",
        "get_logs",
    } <= tools
    upgrade_event = calls.get(target_id="upgrade_instance")
    assert upgrade_event.after["outcome"] == "ok" and len(upgrade_event.after["args_sha256"]) == 64
    assert upgrade_event.after["token_prefix"] and upgrade_event.actor == user
    assert Decimal(StrategyInstance.objects.get(pk=instance_id).total_capital) == Decimal("5000.00")
