"""Graduation criteria: exact boundaries, per-tenant policy, and the request refused or queued."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from stratbox.governance.models import GraduationPolicy, LiveApprovalRequest
from stratbox.governance.selectors import graduation_policy_for
from stratbox.governance.services import graduation_evaluate
from stratbox.trading.track_record import TrackRecord
from tenants.models import AuditEvent
from tests.governance.conftest import Trader, graduate


def _record(trades=20, win_rate="75", pnl="100", drawdown="5") -> TrackRecord:
    return TrackRecord(
        instance_id="x",
        ledger="paper",
        is_shadow=False,
        trades=trades,
        wins=0,
        losses=0,
        win_rate=D(win_rate) if win_rate is not None else None,
        pnl=D(pnl),
        fees=D(0),
        max_drawdown=D(drawdown),
        max_drawdown_amount=D(0),
        capital_base=D(1000),
        since=datetime(2026, 1, 1, tzinfo=UTC),
        last_trade_at=None,
        open_position=False,
        open_pnl=None,
    )


def _unmet(record, tenant) -> list[str]:
    return [c.code for c in graduation_evaluate(record, graduation_policy_for(tenant)) if not c.met]


@pytest.mark.parametrize(
    ("field", "failing", "passing", "code"),
    [
        ("trades", 19, 20, "TOO_FEW_TRADES"),
        ("win_rate", "55", "55.01", "WIN_RATE_TOO_LOW"),
        ("pnl", "0", "0.01", "PNL_NOT_POSITIVE"),
        ("drawdown", "20", "19.99", "DRAWDOWN_TOO_HIGH"),
    ],
)
def test_seed_002_default_boundaries(tenant, field, failing, passing, code):
    assert _unmet(_record(**{field: failing}), tenant) == [code]
    assert _unmet(_record(**{field: passing}), tenant) == []


def test_no_trades_means_no_win_rate_and_is_refused(tenant):
    assert _unmet(_record(trades=0, win_rate=None, pnl="0", drawdown="0"), tenant) == [
        "TOO_FEW_TRADES",
        "WIN_RATE_TOO_LOW",
        "PNL_NOT_POSITIVE",
    ]


def test_staff_sets_other_thresholds_per_tenant(tenant, other_tenant):
    GraduationPolicy.objects.create(
        tenant=tenant, min_trades=5, min_win_rate=D("40"), min_pnl=D("50"), max_drawdown=D("10")
    )
    assert _unmet(_record(trades=5, win_rate="40.01", pnl="50.01", drawdown="9.99"), tenant) == []
    assert _unmet(_record(trades=4, win_rate="40", pnl="50", drawdown="10"), tenant) == [
        "TOO_FEW_TRADES",
        "WIN_RATE_TOO_LOW",
        "PNL_TOO_LOW",
        "DRAWDOWN_TOO_HIGH",
    ]
    # The other tenant keeps seed 002's defaults.
    assert _unmet(_record(trades=5, win_rate="40.01", pnl="50.01", drawdown="9.99"), other_tenant) == [
        "TOO_FEW_TRADES",
        "WIN_RATE_TOO_LOW",
    ]


def _request(client, instance, account):
    return client.post(
        f"/api/v1/instances/{instance.pk}/live-request/", {"live_account": str(account.pk)}, format="json"
    )


def test_19_paper_trades_refused_listing_the_criterion(api_client, paper_instance, live_account):
    graduate(paper_instance, wins=14, losses=5)  # 19 trades, 73.7 %, +115
    r = _request(api_client, paper_instance, live_account)
    assert r.status_code == 400, r.content
    errors = r.json()["errors"]
    assert [(e["code"], e["attr"]) for e in errors] == [("TOO_FEW_TRADES", "criteria")]
    assert "19 closed paper trades" in errors[0]["detail"]
    assert not LiveApprovalRequest.objects.exists()
    refused = AuditEvent.objects.get(action="live_request.refused")
    assert refused.after["unmet"] == ["TOO_FEW_TRADES"]


def test_20_paper_trades_enter_the_staff_queue(api_client, paper_instance, live_account):
    graduate(paper_instance, wins=15, losses=5)
    r = _request(api_client, paper_instance, live_account)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "pending" and body["live_account"] == str(live_account.pk)
    assert (
        body["track_record"]["paper"]["trades"] == 20 and body["track_record"]["paper"]["win_rate"] == "75.00"
    )
    assert body["track_record"]["shadow"]["ledger"] == "shadow"
    assert all(c["met"] for c in body["criteria"]["results"])
    req = LiveApprovalRequest.objects.get()
    assert req.version_id == paper_instance.version_id and req.status == "pending"
    assert AuditEvent.objects.filter(action="live_request.create", target_id=str(req.pk)).exists()
    # A second request while the first waits: 409, nothing added.
    again = _request(api_client, paper_instance, live_account)
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "REQUEST_PENDING"
    assert LiveApprovalRequest.objects.count() == 1


def test_exactly_55_percent_is_refused_with_every_unmet_criterion(api_client, paper_instance, live_account):
    # 11 wins of 20 = 55.00 %, and a drawdown: 10 losses of -30 first from 1000 -> 700 = 30 %.
    Trader(paper_instance).trades([-30] * 9 + [10] * 11)
    r = _request(api_client, paper_instance, live_account)
    assert r.status_code == 400
    codes = [e["code"] for e in r.json()["errors"]]
    assert codes == ["WIN_RATE_TOO_LOW", "PNL_NOT_POSITIVE", "DRAWDOWN_TOO_HIGH"]
    assert not LiveApprovalRequest.objects.exists()


def test_shadow_trades_do_not_count_for_graduation(api_client, tenant, paper_account, market, live_account):
    from tests.trading.conftest import make_instance

    inst = make_instance(tenant, paper_account, market, mode="observe", max_daily_loss=D("100000"))
    Trader(inst, mode="observe").trades([10] * 20)
    r = _request(api_client, inst, live_account)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "TOO_FEW_TRADES"
    shadow = api_client.get(f"/api/v1/instances/{inst.pk}/governance/").json()["shadow_record"]
    assert shadow["trades"] == 20 and shadow["is_shadow"] is True


def test_request_needs_a_paper_instance_and_a_live_account(
    api_client, tenant, paper_instance, live_account, market
):
    from tests.trading.conftest import make_instance

    graduate(paper_instance)
    r = _request(api_client, paper_instance, paper_instance.account)  # a paper account is not live
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "live_account"
    live_inst = make_instance(tenant, live_account, market)
    r = _request(api_client, live_inst, live_account)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "NOT_A_PAPER_INSTANCE"
    r = api_client.post(f"/api/v1/instances/{paper_instance.pk}/live-request/", {}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "live_account"
    assert not LiveApprovalRequest.objects.exists()


def test_governance_endpoint_shows_record_and_criteria(api_client, paper_instance):
    Trader(paper_instance).trades([100, -220, 50])
    body = api_client.get(f"/api/v1/instances/{paper_instance.pk}/governance/").json()
    assert body["record"]["trades"] == 3 and body["record"]["max_drawdown"] == "20.00"
    assert body["policy"]["min_trades"] == 20 and body["eligible"] is False
    assert {c["code"]: c["met"] for c in body["criteria"]} == {
        "TOO_FEW_TRADES": False,
        "WIN_RATE_TOO_LOW": True,
        "PNL_NOT_POSITIVE": False,
        "DRAWDOWN_TOO_HIGH": False,
    }
    assert body["live_approval"] == {"required": False, "current": False, "request_id": None, "status": None}
