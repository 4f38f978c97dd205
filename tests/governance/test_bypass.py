"""No live order without a current approval: direct API mode change, forged intent, engine path.

Each attempt is denied NOT_APPROVED by the risk gate (not only by the UI), the rejected order is
recorded, and no fill, position or cash movement happens.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from stratbox.engine import runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.governance.models import LiveApprovalRequest, RequestStatus
from stratbox.governance.selectors import instance_config_hash, live_approval_is_current
from stratbox.trading import risk
from stratbox.trading.models import Fill, Order, Position
from tests.engine.conftest import COUNTER, make_version, set_quote
from tests.engine.conftest import make_instance as engine_instance
from tests.trading.conftest import Intents, make_instance, make_quote, place


@pytest.fixture(autouse=True)
def _fresh_sandbox_cache():
    from stratbox.engine import sandboxes

    sandboxes._held.clear()
    yield


def _nothing_moved(account, instance):
    account.refresh_from_db()
    assert account.balance == D("100000")
    assert not Fill.objects.filter(instance=instance).exists()
    assert not Position.objects.filter(instance=instance).exists()


def test_direct_api_mode_change_to_active_still_cannot_trade(api_client, tenant, live_account, market):
    inst = make_instance(tenant, live_account, market, mode="observe")
    r = api_client.post(f"/api/v1/instances/{inst.pk}/mode/", {"mode": "active"}, format="json")
    assert r.status_code == 200 and r.json()["mode"] == "active"
    result = place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100))
    assert result.status == "rejected" and result.deny_code == "NOT_APPROVED"
    assert Order.objects.get(pk=result.order.pk).deny_code == "NOT_APPROVED"
    _nothing_moved(live_account, inst)


def test_forged_intent_claiming_active_is_denied(tenant, live_account, market):
    inst = make_instance(tenant, live_account, market, mode="active")
    forged = {
        "kind": "order",
        "client_order_id": f"{inst.pk}-999-1",
        "side": "buy",
        "qty": 1.0,
        "type": "limit",
        "price": 100.0,
        "tag": "approved",
        "approved": True,  # an untrusted host cannot vouch for itself
        "mode": "active",
    }
    result = place(inst, forged, make_quote(market, 100), mode="active")
    assert result.deny_code == "NOT_APPROVED"
    _nothing_moved(live_account, inst)


def test_an_approval_covers_only_its_own_live_instance(
    staff_user, tenant, live_account, market, paper_instance
):
    """A tenant-made twin (same version, same config, same live account) is not covered."""
    from stratbox.instances.models import StrategyInstance

    twin = StrategyInstance.objects.create(
        tenant=tenant,
        name="twin",
        strategy=paper_instance.strategy,
        version=paper_instance.version,
        account=live_account,
        market=market,
        config=paper_instance.config,
        total_capital=paper_instance.total_capital,
        capital_per_trade=paper_instance.capital_per_trade,
        max_positions=paper_instance.max_positions,
        max_position_size=paper_instance.max_position_size,
        max_daily_loss=paper_instance.max_daily_loss,
        mode="active",
    )
    LiveApprovalRequest.objects.create(
        tenant=tenant,
        instance=paper_instance,
        instance_name="p",
        live_account=live_account,
        version=paper_instance.version,
        config={},
        config_hash=instance_config_hash(twin),
        track_record={},
        criteria={},
        status=RequestStatus.APPROVED,
        live_instance=make_instance(tenant, live_account, market),  # some other live instance
    )
    assert not live_approval_is_current(twin)
    assert place(twin, Intents(twin)("buy", 1.0), make_quote(market, 100)).deny_code == "NOT_APPROVED"


def test_a_failing_checker_fails_closed(tenant, live_account, market):
    inst = make_instance(tenant, live_account, market, mode="active")

    def broken(instance):
        raise RuntimeError("db hiccup")

    risk.set_live_approval_checker(broken)
    try:
        assert risk.instance_live_approval_is_current(inst) is False
        assert place(inst, Intents(inst)("buy", 1.0), make_quote(market, 100)).deny_code == "NOT_APPROVED"
        risk.set_live_approval_checker(lambda instance: 1)  # truthy is not True
        assert risk.instance_live_approval_is_current(inst) is False
    finally:
        risk.set_live_approval_checker(live_approval_is_current)


def test_governance_registered_its_checker():
    assert risk._live_approval_checker is live_approval_is_current


def test_engine_tick_on_a_live_account_is_denied(tenant, live_account, market, settings):
    version = make_version(tenant, COUNTER)
    inst = engine_instance(
        version, live_account, market, mode="active", total_capital=D("1000"), capital_per_trade=D("1000")
    )
    set_quote(market)
    reconcile()
    slot = runtime.rt_get(str(inst.pk))["next_due_at"]
    outcome = tick_run(inst.pk, slot)
    assert outcome.status == "ok", outcome
    order = Order.objects.get(instance=inst)
    assert order.status == "rejected" and order.deny_code == "NOT_APPROVED" and not order.is_shadow
    _nothing_moved(live_account, inst)


def test_snapshot_sent_to_the_host_has_no_credentials(api_client, tenant, market):
    """The engine's tick snapshot for a live instance carries no credential material."""
    from stratbox.engine.ticks.inputs import tick_snapshot
    from stratbox.trading.models import Account

    r = api_client.post(
        "/api/v1/live-accounts/",
        {
            "name": "Exchange",
            "starting_balance": "5000",
            "broker": "ccxt:binance",
            "credentials": {"api_key": "AKIA-very-secret-key-1234", "api_secret": "s3cr3t-value-abcdef"},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    account = Account.objects.get(pk=r.json()["id"])
    inst = make_instance(tenant, account, market, mode="active")
    snapshot = json.dumps(tick_snapshot(inst, make_quote(market, 100), "active", f"{inst.pk}-1"), default=str)
    for secret in (
        "AKIA-very-secret-key-1234",
        "s3cr3t-value-abcdef",
        account.credentials_ciphertext,
        "1234",
    ):
        assert secret not in snapshot
    assert "credential" not in snapshot and "api_key" not in snapshot
