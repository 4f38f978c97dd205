"""Escalation, delivered for real on loopback: SMTP (aiosmtpd), a signed JSON webhook and a
Telegram-Bot-API-shaped server; exact bodies, locales, signatures and per-channel de-duplication."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from stratbox.notifications import services as notify
from stratbox.notifications.models import Delivery, DeliveryMarker, NotificationEvent
from stratbox.plugins import contract
from tests.plugins.conftest import MRC, artifact, body

pytestmark = pytest.mark.django_db


@pytest.fixture
def mounted(api_client: Any, instance: Any) -> Any:
    api_client.put(
        f"/api/v1/instances/{instance.pk}/plugins/", [{"plugin": "market_regime_control"}], format="json"
    )
    return instance


@pytest.fixture
def channels(api_client: Any, smtp_sink: Any, http_sink: Any, settings: Any) -> dict[str, Any]:
    settings.STRATBOX_TELEGRAM_API_URL = f"http://{http_sink.base}"
    made = {}
    for name, url in (
        ("mail", smtp_sink.url()),
        ("hook", f"json://{http_sink.base}/hooks/stratbox"),
        ("tg", "tgram://123456789:AAHtestTOKEN/4242"),
    ):
        r = api_client.post("/api/v1/notifications/channels/", {"name": name, "url": url}, format="json")
        assert r.status_code == 201, r.json()
        made[name] = r.json()
    return made


def plain(mail: Any) -> str:
    """The text part as written (SMTP carries CRLF line ends)."""
    return mail.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n").strip()


def deliver_pending() -> None:
    """What the worker's `deliver_event_task` does for each new event."""
    for event in NotificationEvent.objects.filter(deliveries__isnull=True).order_by("pk"):
        notify.event_deliver(event_id=event.pk)


def push(client: Any, instance: Any, doc: dict[str, Any]) -> Any:
    r = client.post(
        f"/api/v1/instances/{instance.pk}/plugins/artifacts/", body(doc), content_type="application/json"
    )
    assert r.status_code == 201, r.json()
    return r.json()


def expected_body(instance: Any, locale: str, doc: dict[str, Any]) -> tuple[str, str]:
    ctx = f"stratbox/{instance.tenant_id}/{instance.pk}"
    if locale == "zh-CN":
        return (
            f"[{ctx}] 策略插件告警：market_regime_control | risk_reduced",
            "\n".join(
                [
                    "策略插件告警",
                    "",
                    f"环境：{ctx}",
                    "策略：tqqq_growth_income",
                    "插件：market_regime_control",
                    "状态：risk_reduced",
                    "提示：delever",
                    "模式：shadow",
                    f"信号日期：{doc['as_of']}",
                    "原因：macro:benchmark_realized_volatility_high",
                    "",
                    "市场状态：风险降低；请复核杠杆。",
                    "",
                    "范围：仅供人工复核；插件不会下单，也不会修改仓位配置。",
                ]
            ),
        )
    return (
        f"[{ctx}] Strategy plugin alert: market_regime_control | risk_reduced",
        "\n".join(
            [
                "Strategy Plugin Alert",
                "",
                f"Context: {ctx}",
                "Strategy: tqqq_growth_income",
                "Plugin: market_regime_control",
                "Status: risk_reduced",
                "Notice: delever",
                "Mode: shadow",
                f"Signal as-of: {doc['as_of']}",
                "Reasons: macro:benchmark_realized_volatility_high",
                "",
                "Market regime: risk reduced; review leverage.",
                "",
                "Scope: Manual review notice only; the plugin does not place orders or change allocations.",
            ]
        ),
    )


def test_alert_reaches_every_channel_once_per_key(
    api_client: Any, mounted: Any, channels: dict[str, Any], smtp_sink: Any, http_sink: Any
) -> None:
    doc = artifact(MRC)
    push(api_client, mounted, doc)
    deliver_pending()
    subject, text = expected_body(mounted, "en-US", doc)

    # E-mail: one message on the loopback SMTP server, exact subject and body.
    assert len(smtp_sink.messages) == 1
    mail = smtp_sink.messages[0]
    assert mail["Subject"] == subject
    assert mail["To"] == "ops@acme.test"
    assert plain(mail) == text

    # Webhook: the event JSON, signed with the channel's secret.
    hooks = [r for r in http_sink.requests if r.path == "/hooks/stratbox"]
    assert len(hooks) == 1
    envelope = hooks[0].json()
    assert envelope["title"] == subject
    event = json.loads(envelope["message"])
    assert event["event_type"] == "plugin_alert"
    assert event["body"] == text
    assert event["payload"]["canonical_route"] == "risk_reduced"
    assert event["payload"]["reason_codes"] == ["macro:benchmark_realized_volatility_high"]
    secret = channels["hook"]["signing_secret"]
    expected_sig = (
        "sha256=" + hmac.new(secret.encode(), envelope["message"].encode(), hashlib.sha256).hexdigest()
    )
    assert hooks[0].headers["x-stratbox-signature"] == expected_sig
    assert hooks[0].headers["x-stratbox-event"] == "plugin_alert"

    # Telegram Bot API shape: POST /bot<token>/sendMessage with the chat id and the text.
    tg = [r for r in http_sink.requests if r.path.startswith("/bot")]
    assert len(tg) == 1
    assert tg[0].path == "/bot123456789:AAHtestTOKEN/sendMessage"
    payload = tg[0].json()
    assert str(payload["chat_id"]) == "4242"
    assert subject in payload["text"] and "Scope: Manual review notice only" in payload["text"]

    sent = Delivery.objects.filter(status="sent")
    assert sent.count() == 3
    keys = set(DeliveryMarker.objects.values_list("key", flat=True))
    signal = contract.validate_artifact(
        doc,
        mount=contract.Mount(plugin="market_regime_control", strategy="tqqq_growth_income"),
        registry=_registry(),
    )
    ctx = f"stratbox/{mounted.tenant_id}/{mounted.pk}"
    assert keys == {
        contract.alert_key(signal, context=ctx, namespace=ns)
        for ns in ("strategy_plugin_alert", "strategy_plugin_webhook_alert", "strategy_plugin_telegram_alert")
    }
    email_key = contract.alert_key(signal, context=ctx)
    assert email_key.startswith(
        f"strategy_plugin_alert/{f'stratbox-{mounted.tenant_id}-{mounted.pk}'[:80]}/tqqq_growth_income/market_regime_control/"
        f"{doc['as_of']}/risk_reduced/delever/"
    )

    # The same artifact again: one more inbox event, but every channel skips it as a duplicate.
    push(api_client, mounted, doc)
    deliver_pending()
    assert len(smtp_sink.messages) == 1
    assert len(http_sink.requests) == 2
    dup = Delivery.objects.filter(status="skipped", reason="duplicate")
    assert dup.count() == 3

    # A new as_of alerts again on every channel.
    push(api_client, mounted, artifact(MRC, as_of="2026-12-05"))
    deliver_pending()
    assert len(smtp_sink.messages) == 2
    assert len(http_sink.requests) == 4
    assert "Signal as-of: 2026-12-05" in plain(smtp_sink.messages[1])


def _registry() -> Any:
    from stratbox.plugins.services import registry

    return registry()


def test_alert_in_the_tenants_locale(api_client: Any, mounted: Any, smtp_sink: Any) -> None:
    r = api_client.patch("/api/v1/notifications/settings/", {"locale": "zh-CN"}, format="json")
    assert r.status_code == 200, r.json()
    api_client.post(
        "/api/v1/notifications/channels/", {"name": "mail", "url": smtp_sink.url()}, format="json"
    )
    doc = artifact(MRC)
    push(api_client, mounted, doc)
    deliver_pending()
    subject, text = expected_body(mounted, "zh-CN", doc)
    assert smtp_sink.messages[0]["Subject"] == subject
    assert plain(smtp_sink.messages[0]) == text


def test_quiet_signal_does_not_escalate(api_client: Any, mounted: Any, smtp_sink: Any) -> None:
    api_client.post(
        "/api/v1/notifications/channels/", {"name": "mail", "url": smtp_sink.url()}, format="json"
    )
    push(
        api_client,
        mounted,
        artifact(
            MRC, canonical_route="no_action", suggested_action="watch_only", would_trade_if_enabled=False
        ),
    )
    deliver_pending()
    assert not NotificationEvent.objects.filter(event_type="plugin_alert").exists()
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("route", "action", "would_trade", "escalates"),
    [
        ("no_action", "no_action", False, False),
        ("no_action", "watch_only", False, False),
        ("no_action", "notify_manual_review", False, False),
        ("no_action", "delever", False, False),
        ("no_action", "defend", False, True),
        ("no_action", "blocked", False, True),
        ("no_action", "no_action", True, True),
        ("watch", "watch_only", False, True),
        ("opportunity_watch", "notify_manual_review", False, True),
        ("risk_off", "defend", True, True),
        ("", "", False, True),  # missing: unknown escalates
        ("NO_ACTION", "No_Action", "no", False),  # normalised
        ("no_action", "no_action", "yes", True),
    ],
)
def test_escalation_rule(route: str, action: str, would_trade: Any, escalates: bool) -> None:
    doc = artifact(MRC, canonical_route=route, suggested_action=action, would_trade_if_enabled=would_trade)
    signal = contract.validate_artifact(
        doc,
        mount=contract.Mount(plugin="market_regime_control", strategy="tqqq_growth_income"),
        registry=_registry(),
    )
    assert contract.should_alert(signal) is escalates
