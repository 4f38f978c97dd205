"""Engine API: runtime, pause/resume, test run, runs, kill switch — scoping, roles, errors."""

from __future__ import annotations

import pytest

from stratbox.engine import runtime
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.trading.models import Order
from tenants.models import AuditEvent, Tenant
from tests.engine.conftest import COUNTER, make_instance, make_version


@pytest.fixture
def running(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    return inst


@pytest.fixture
def foreign(other_tenant, other_paper_account, market, quote):
    inst = make_instance(make_version(other_tenant, COUNTER), other_paper_account, market)
    reconcile()
    return inst


def _rt(inst):
    return runtime.rt_get(str(inst.pk))


def test_runtime_status(api_client, running):
    tick_run(running.pk, _rt(running)["next_due_at"])
    res = api_client.get(f"/api/v1/instances/{running.pk}/runtime/")
    assert res.status_code == 200
    body = res.json()
    assert body["loaded"] is True and body["paused"] is False and body["mode"] == "observe"
    assert body["last_tick_at"] and body["next_due_at"] and body["worker"]
    assert body["stats"]["runs"] == 1 and body["stats"]["ok"] == 1 and body["stats"]["orders"] == 1


def test_pause_and_resume(api_client, running):
    res = api_client.post(f"/api/v1/instances/{running.pk}/pause/")
    assert res.status_code == 200 and res.json()["paused"] is True and res.json()["pause_reason"] == "USER"
    assert runtime.r().zscore(runtime.DUE_KEY, str(running.pk)) is None
    assert AuditEvent.objects.filter(action="instance.pause", target_id=str(running.pk)).exists()
    res = api_client.post(f"/api/v1/instances/{running.pk}/resume/")
    assert res.status_code == 200 and res.json()["paused"] is False and res.json()["next_due_at"]


def test_pause_an_off_instance_is_409(api_client, instance_factory):
    inst = instance_factory(mode="off")
    res = api_client.post(f"/api/v1/instances/{inst.pk}/pause/")
    assert res.status_code == 409
    assert res.json()["errors"][0]["code"] == "INSTANCE_OFF"
    assert _rt(inst) is None


def test_viewer_cannot_pause_resume_test_run_or_kill(viewer_client, running, tenant):
    for path in ("pause", "resume", "test-run"):
        res = viewer_client.post(f"/api/v1/instances/{running.pk}/{path}/")
        assert res.status_code == 403, path
    assert viewer_client.post("/api/v1/tenant/kill-switch/", {"on": True}, format="json").status_code == 403
    assert not _rt(running)["paused"]
    assert Tenant.objects.get(pk=tenant.pk).killed_at is None
    assert not Run.objects.exists()
    # but may read
    assert viewer_client.get(f"/api/v1/instances/{running.pk}/runtime/").status_code == 200
    assert viewer_client.get("/api/v1/tenant/kill-switch/").json()["on"] is False


def test_member_cannot_use_the_kill_switch(tenant, running):
    from tests.factories import add_member, client_for

    member = client_for(add_member(tenant, role="member"), tenant)
    res = member.post("/api/v1/tenant/kill-switch/", {"on": True}, format="json")
    assert res.status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).killed_at is None


def test_kill_switch_api(api_client, running, tenant):
    res = api_client.post("/api/v1/tenant/kill-switch/", {"on": True}, format="json")
    assert res.status_code == 200 and res.json()["on"] is True
    assert _rt(running)["pause_reason"] == "KILL_SWITCH"
    res = api_client.post(f"/api/v1/instances/{running.pk}/resume/")
    assert res.status_code == 409 and res.json()["errors"][0]["code"] == "KILL_SWITCH"
    assert _rt(running)["paused"]
    res = api_client.post("/api/v1/tenant/kill-switch/", {}, format="json")
    assert res.status_code == 400 and res.json()["errors"][0]["attr"] == "on"
    res = api_client.post("/api/v1/tenant/kill-switch/", {"on": False}, format="json")
    assert res.status_code == 200 and res.json()["on"] is False
    assert not _rt(running)["paused"]


def test_test_run_returns_logs_and_would_be_actions_and_touches_nothing(api_client, running):
    before = _rt(running)
    res = api_client.post(f"/api/v1/instances/{running.pk}/test-run/")
    assert res.status_code == 200
    body = res.json()
    assert body["run"]["trigger"] == "dry_run" and body["run"]["status"] == "ok"
    assert body["run"]["logs"][0]["msg"].startswith("tick 1 ")
    assert [a["kind"] for a in body["run"]["actions"]] == ["would_shadow"]
    assert body["state"] == {"n": 1, "inits": 1}
    assert not Order.objects.exists()  # nothing reached a broker, not even the shadow ledger
    after = _rt(running)
    assert after["state"] == before["state"] and after["state_rev"] == before["state_rev"]


def test_test_run_active_reports_risk_denials(api_client, instance_factory, quote):
    inst = instance_factory(mode="active", config={"qty": 50.0})  # 5000 > capital_per_trade
    res = api_client.post(f"/api/v1/instances/{inst.pk}/test-run/")
    assert res.status_code == 200
    action = res.json()["run"]["actions"][0]
    assert action["kind"] == "would_deny" and action["deny_code"] == "CAPITAL_PER_TRADE_EXCEEDED"
    assert not Order.objects.exists()


def test_test_run_of_a_crashing_strategy_shows_the_error(api_client, instance_factory, quote):
    inst = instance_factory(mode="observe", config={"crash_at": 1})
    res = api_client.post(f"/api/v1/instances/{inst.pk}/test-run/")
    assert res.status_code == 200
    run = res.json()["run"]
    assert (
        run["status"] == "error"
        and run["error_code"] == "RUNTIME_ERROR"
        and "boom at 1" in run["error_message"]
    )
    assert "strategy.py" in run["traceback"]


def test_runs_list_filters_and_detail(api_client, running):
    inst = running
    base = _rt(inst)["next_due_at"]
    tick_run(inst.pk, base)
    api_client.post(f"/api/v1/instances/{inst.pk}/test-run/")
    res = api_client.get("/api/v1/runs/", {"instance": str(inst.pk)})
    assert res.status_code == 200 and res.json()["count"] == 2
    res = api_client.get("/api/v1/runs/", {"trigger": "dry_run"})
    assert [r["trigger"] for r in res.json()["results"]] == ["dry_run"]
    res = api_client.get("/api/v1/runs/", {"status": "error"})
    assert res.json()["count"] == 0
    res = api_client.get("/api/v1/runs/", {"status": "nope"})
    assert res.status_code == 400 and res.json()["errors"][0]["attr"] == "status"
    run_id = Run.objects.get(trigger="scheduled").pk
    res = api_client.get(f"/api/v1/runs/{run_id}/")
    assert res.status_code == 200
    body = res.json()
    assert body["actions"][0]["kind"] == "shadow" and body["config_snapshot"]["qty"] == 0.01
    assert body["version"] == str(inst.version_id) and body["tick_seq"] == int(base)


def test_other_tenant_gets_404_everywhere_and_nothing_changes(other_api_client, api_client, running, foreign):
    tick_run(running.pk, _rt(running)["next_due_at"])
    run = Run.objects.get(instance=running)
    for method, path in [
        ("get", f"/api/v1/instances/{running.pk}/runtime/"),
        ("post", f"/api/v1/instances/{running.pk}/pause/"),
        ("post", f"/api/v1/instances/{running.pk}/resume/"),
        ("post", f"/api/v1/instances/{running.pk}/test-run/"),
        ("get", f"/api/v1/runs/{run.pk}/"),
        ("get", "/api/v1/instances/not-a-uuid/runtime/"),
        ("get", "/api/v1/runs/not-a-number/"),
    ]:
        res = getattr(other_api_client, method)(path)
        assert res.status_code == 404, (method, path, res.status_code)
    assert not _rt(running)["paused"]
    assert Run.objects.filter(instance=running).count() == 1
    # lists never leak: B sees none of A's runs, even when filtering by A's instance
    assert other_api_client.get("/api/v1/runs/").json()["count"] == 0
    assert other_api_client.get("/api/v1/runs/", {"instance": str(running.pk)}).json()["count"] == 0
    # B's kill switch does not touch A
    assert (
        other_api_client.post("/api/v1/tenant/kill-switch/", {"on": True}, format="json").status_code == 200
    )
    assert not _rt(running)["paused"] and _rt(foreign)["pause_reason"] == "KILL_SWITCH"
    assert api_client.get(f"/api/v1/instances/{foreign.pk}/runtime/").status_code == 404


def test_anonymous_is_refused(client, running):
    assert client.get(f"/api/v1/instances/{running.pk}/runtime/").status_code in (401, 403)
    assert client.get("/api/v1/runs/").status_code in (401, 403)
