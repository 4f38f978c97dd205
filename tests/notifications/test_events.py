"""Platform events become notifications: audited actions (kill switch, mode, pauses by reason, staff
decisions) and what a tick does (fills, denials with their code, `context.notify`), with
subscriptions, rate limits, quiet hours and the locale applied."""

from __future__ import annotations

import time
from datetime import time as dtime
from typing import Any

import pytest

from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.notifications.models import Delivery, NotificationEvent
from stratbox.notifications.services import digest_flush, settings_update
from tenants.services import audit_record
from tests.engine.conftest import make_instance, make_version, set_quote
from tests.notifications.conftest import deliver_pending

pytestmark = pytest.mark.django_db

NOTIFIER = """
from sandbox.sdk import Strategy


class Notifier(Strategy):
    CONFIG_SCHEMA = {"qty": {"type": "float", "default": 0.01, "min": 0.0001, "max": 1000}}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.context.notify(f"crossed up at {tick.price}")
        self.context.notify("second message of the same bar")
        self.context.place_order("buy", self.config["qty"])
"""


def channel(client: Any, url: str, name: str = "mail") -> str:
    r = client.post("/api/v1/notifications/channels/", {"name": name, "url": url}, format="json")
    assert r.status_code == 201, r.json()
    return r.json()["id"]


def events(kind: str) -> list[NotificationEvent]:
    return list(NotificationEvent.objects.filter(event_type=kind).order_by("pk"))


def test_kill_switch_and_mode_changes_notify(api_client: Any, tenant: Any, smtp_sink: Any) -> None:
    channel(api_client, smtp_sink.url())
    assert api_client.post("/api/v1/tenant/kill-switch/", {"on": True}, format="json").status_code == 200
    deliver_pending()
    (kill,) = events("kill_switch")
    assert kill.title == "Kill switch on" and kill.severity == "critical"
    assert kill.body == "The tenant's kill switch was turned on by owner@acme.test."
    assert [m["Subject"] for m in smtp_sink.messages] == ["Kill switch on"]


def test_pause_reasons_map_to_their_events(tenant: Any, paper_account: Any, market: Any) -> None:
    version = make_version(tenant, NOTIFIER)
    inst = make_instance(version, paper_account, market)
    settings_update(tenant=tenant, actor=None, locale="zh-CN")
    for reason, details in (
        ("DAILY_LOSS_LIMIT", {}),
        ("CIRCUIT_BREAKER", {"consecutive_failures": 5, "last_error": "TIMEOUT"}),
        ("USER", {}),
    ):
        audit_record(
            tenant=tenant,
            actor=None,
            actor_label="engine",
            action="instance.auto_pause",
            target=inst,
            after={"paused": True, "reason": reason, **details},
        )
    audit_record(tenant=tenant, actor=None, action="instance.resume", target=inst, after={"paused": False})
    (loss,) = events("daily_loss_hit")
    assert loss.title == f"触及单日亏损上限：{inst.name}" and loss.payload["reason"] == "DAILY_LOSS_LIMIT"
    (breaker,) = events("strategy_error")
    assert breaker.body == f"{inst.name} 连续失败 5 次（最后错误 TIMEOUT），已暂停（CIRCUIT_BREAKER）。"
    (paused,) = events("instance_paused")
    assert paused.payload["reason"] == "USER"
    (resumed,) = events("instance_resumed")
    assert resumed.instance_id == inst.pk and resumed.locale == "zh-CN"
    # Unrelated audited actions notify nothing.
    audit_record(tenant=tenant, actor=None, action="strategy.upload", target=inst)
    assert NotificationEvent.objects.count() == 4


def test_live_request_decision_notifies(tenant: Any, user: Any) -> None:
    from tests.factories import make_user

    staff = make_user("staff@stratbox.test", is_staff=True)
    audit_record(
        tenant=tenant,
        actor=staff,
        action="live_request.reject",
        target_type="governance.liveapprovalrequest",
        target_id="42",
        after={"status": "rejected", "decision_reason": "Too few paper trades."},
    )
    (decided,) = events("live_request_decided")
    assert decided.title == "Live trading request rejected"
    assert (
        decided.body == "Staff (staff@stratbox.test) rejected the live trading request. Too few paper trades."
    )
    assert decided.payload["decision"] == "reject"


def test_tick_fills_denials_and_strategy_messages(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, smtp_sink: Any
) -> None:
    mail = channel(api_client, smtp_sink.url())
    version = make_version(tenant, NOTIFIER)
    inst = make_instance(version, paper_account, market, mode="active", config={"qty": 0.5})
    # Fills are off by default; this instance wants them.
    r = api_client.post(
        "/api/v1/notifications/subscriptions/",
        {"channel": mail, "event_type": "order_filled", "level": "on", "instance": str(inst.pk)},
        format="json",
    )
    assert r.status_code == 200, r.json()
    set_quote(market)
    reconcile()
    slot = int(time.time()) - 1
    assert tick_run(inst.pk, slot).status == "ok"
    (filled,) = events("order_filled")
    assert filled.payload["client_order_id"] == f"{inst.pk}-{slot}-1" and filled.payload["status"] == "filled"
    (msg,) = events("strategy_msg")  # one per bar: the first of the two
    assert msg.body == "crossed up at 100.0" and msg.payload["slot"] == slot
    # The next bar's order is denied by the risk gate (capital per trade): the code travels.
    inst.capital_per_trade = 1
    inst.save(update_fields=["capital_per_trade"])
    assert tick_run(inst.pk, slot + 1).status == "ok"
    (denied,) = events("order_rejected")
    assert denied.payload["deny_code"] and denied.payload["deny_code"] in denied.title
    deliver_pending()
    subjects = [m["Subject"] for m in smtp_sink.messages]
    assert filled.title in subjects and denied.title in subjects and msg.title in subjects
    assert len(events("strategy_msg")) == 2


def test_subscriptions_tenant_default_and_instance_override(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, smtp_sink: Any
) -> None:
    mail = channel(api_client, smtp_sink.url())
    version = make_version(tenant, NOTIFIER)
    a = make_instance(version, paper_account, market)
    b = make_instance(version, paper_account, market)
    api_client.post(
        "/api/v1/notifications/subscriptions/",
        {"channel": mail, "event_type": "instance_resumed", "level": "off"},
        format="json",
    )
    api_client.post(
        "/api/v1/notifications/subscriptions/",
        {"channel": mail, "event_type": "instance_resumed", "level": "on", "instance": str(b.pk)},
        format="json",
    )
    for inst in (a, b):
        audit_record(
            tenant=tenant, actor=None, action="instance.resume", target=inst, after={"paused": False}
        )
    deliver_pending()
    assert [m["Subject"] for m in smtp_sink.messages] == [f"Instance {b.name} resumed"]
    listed = api_client.get("/api/v1/notifications/subscriptions/", {"instance": str(b.pk)}).json()["results"]
    assert [(s["event_type"], s["level"]) for s in listed] == [("instance_resumed", "on")]


def test_rate_limit_per_channel(api_client: Any, tenant: Any, smtp_sink: Any) -> None:
    api_client.patch("/api/v1/notifications/settings/", {"rate_burst": 2, "rate_per_hour": 1}, format="json")
    channel(api_client, smtp_sink.url())
    for on in (True, False, True):
        api_client.post("/api/v1/tenant/kill-switch/", {"on": on}, format="json")
    deliver_pending()
    statuses = list(Delivery.objects.order_by("pk").values_list("status", "reason"))
    assert statuses == [("sent", ""), ("sent", ""), ("skipped", "rate_limited")]
    assert len(smtp_sink.messages) == 2


def test_quiet_hours_hold_for_a_digest(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, smtp_sink: Any
) -> None:
    channel(api_client, smtp_sink.url())
    version = make_version(tenant, NOTIFIER)
    inst = make_instance(version, paper_account, market)
    settings_update(
        tenant=tenant, actor=None, quiet_start=dtime(0, 0), quiet_end=dtime(23, 59, 59), timezone="UTC"
    )
    audit_record(tenant=tenant, actor=None, action="instance.resume", target=inst, after={})
    audit_record(
        tenant=tenant,
        actor=None,
        action="instance.mode",
        target=inst,
        before={"mode": "off"},
        after={"mode": "observe"},
    )
    # Critical events are never held.
    audit_record(
        tenant=tenant,
        actor=None,
        action="instance.auto_pause",
        target=inst,
        after={"reason": "DAILY_LOSS_LIMIT"},
    )
    deliver_pending()
    assert [m["Subject"] for m in smtp_sink.messages] == [f"Daily-loss limit hit: {inst.name}"]
    held = Delivery.objects.filter(reason="quiet_hours", digest_pending=True)
    assert held.count() == 2
    assert digest_flush() == 0  # still quiet
    settings_update(tenant=tenant, actor=None, quiet_start=None, quiet_end=None)
    assert digest_flush() == 1
    deliver_pending()
    digest = smtp_sink.messages[-1]
    assert digest["Subject"] == "Stratbox digest: 2 notifications"
    text = digest.get_body(preferencelist=("plain",)).get_content()
    assert f"Instance {inst.name} resumed" in text and f"Mode of {inst.name}: off → observe" in text
    assert not Delivery.objects.filter(digest_pending=True).exists()


def test_fills_without_a_subscription_raise_no_event(tenant: Any, paper_account: Any, market: Any) -> None:
    version = make_version(tenant, NOTIFIER)
    inst = make_instance(version, paper_account, market, mode="active", config={"qty": 0.5})
    set_quote(market)
    reconcile()
    assert tick_run(inst.pk, int(time.time()) - 1).status == "ok"
    assert events("order_filled") == []
    assert len(events("strategy_msg")) == 1


def test_fill_events_follow_subscription_changes_from_tick_to_tick(
    api_client: Any, tenant: Any, paper_account: Any, market: Any, smtp_sink: Any
) -> None:
    """The tick path keeps each tenant's profile (locale, fill subscriptions) between ticks: a change
    made through the API is seen by the very next tick, in both directions, and so is the locale."""
    mail = channel(api_client, smtp_sink.url())
    version = make_version(tenant, NOTIFIER)
    inst = make_instance(version, paper_account, market, mode="active", config={"qty": 0.5})
    set_quote(market)
    reconcile()
    slots: list[int] = []

    def tick() -> int:
        """One tick on a fresh slot (the one just begun: never late, never a duplicate)."""
        while slots and int(time.time()) <= slots[-1]:
            time.sleep(0.05)
        slots.append(int(time.time()))
        assert tick_run(inst.pk, slots[-1]).status == "ok"
        return slots[-1]

    def subscribe(level: str) -> None:
        r = api_client.post(
            "/api/v1/notifications/subscriptions/",
            {"channel": mail, "event_type": "order_filled", "level": level, "instance": str(inst.pk)},
            format="json",
        )
        assert r.status_code == 200, r.json()

    tick()  # the profile is cached: nobody wants fills
    assert events("order_filled") == []
    subscribe("on")
    slot = tick()
    (filled,) = events("order_filled")
    assert filled.payload["client_order_id"] == f"{inst.pk}-{slot}-1" and filled.locale == "en-US"
    settings_update(tenant=tenant, actor=None, locale="zh-CN")
    tick()
    assert [e.locale for e in events("order_filled")] == ["en-US", "zh-CN"]
    assert "已成交" in events("order_filled")[-1].title
    subscribe("off")
    tick()
    assert len(events("order_filled")) == 2
