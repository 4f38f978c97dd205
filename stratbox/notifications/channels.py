"""Sending through apprise: one plugin per stored channel URL, so each attempt has its own outcome.

apprise's aggregate `Apprise.notify()` answers one True/False for all its URLs; the delivery log
needs one row per channel and attempt, so each URL is instantiated on its own. URLs are stored
encrypted (the trading credentials' Fernet keys) and shown only as apprise's redacted form.

Signed JSON webhooks (`json://`, `jsons://`): the message apprise posts is our event JSON, and the
request carries `X-Stratbox-Signature: sha256=<hex>` — HMAC-SHA256 of that message with the
channel's secret — and `X-Stratbox-Event` (the event type), so a receiver can verify it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

import apprise
from django.conf import settings

logger = logging.getLogger(__name__)

KINDS = {
    "mailto": "email",
    "mailtos": "email",
    "tgram": "telegram",
    "json": "webhook",
    "jsons": "webhook",
    "ntfy": "push",
    "ntfys": "push",
    "pover": "push",
    "discord": "chat",
    "slack": "chat",
    "twilio": "sms",
    "vonage": "sms",
    "plivo": "sms",
    "sns": "sms",
}
SIGNATURE_HEADER = "X-Stratbox-Signature"
EVENT_HEADER = "X-Stratbox-Event"


class ChannelUrlError(ValueError):
    pass


def _instantiate(url: str) -> Any:
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None or isinstance(plugin, bool):
        raise ChannelUrlError("apprise does not recognise this URL (see the apprise URL formats).")
    telegram_api = getattr(settings, "STRATBOX_TELEGRAM_API_URL", "")
    if telegram_api and hasattr(plugin, "notify_url") and kind_of(url) == "telegram":
        # A self-hosted Telegram Bot API server (or a loopback one in tests): per instance only.
        plugin.notify_url = telegram_api.rstrip("/") + "/bot"
    return plugin


def kind_of(url: str) -> str:
    return KINDS.get(url.split("://", 1)[0].lower(), "other")


def channel_check(url: str) -> tuple[str, str]:
    """(kind, redacted URL) of a valid apprise URL, or ChannelUrlError."""
    if not isinstance(url, str) or "://" not in url or len(url) > 2000:
        raise ChannelUrlError("must be an apprise URL such as mailto://…, tgram://…, ntfy://… or json://….")
    plugin = _instantiate(url)
    return kind_of(url), plugin.url(privacy=True)[:500]


def signature(secret: str, message: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass
class SendResult:
    ok: bool
    error: str
    latency_ms: float


def send(
    *, url: str, title: str, body: str, event_type: str, severity: str, secret: str = "", silent: bool = False
) -> SendResult:
    """One attempt on one channel; never raises (a failure is a result the delivery log records)."""
    started = time.perf_counter()
    try:
        plugin = _instantiate(url)
        kind = kind_of(url)
        if kind == "webhook":
            plugin.headers = {**(plugin.headers or {}), EVENT_HEADER: event_type}
            if secret:
                plugin.headers[SIGNATURE_HEADER] = signature(secret, body)
        if kind == "telegram" and silent:
            plugin.silent = True
        notify_type = {
            "critical": apprise.NotifyType.FAILURE,
            "warning": apprise.NotifyType.WARNING,
        }.get(severity, apprise.NotifyType.INFO)
        # apprise answers True/False; the reason of a failure is in its log, captured for the delivery row.
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = bool(
                plugin.notify(
                    body=body, title=title, notify_type=notify_type, body_format=apprise.NotifyFormat.TEXT
                )
            )
        lines = [
            line.split(" - ", 2)[-1].strip() for line in captured.getvalue().splitlines() if line.strip()
        ]
        error = "" if ok else (" | ".join(lines[-2:]) or f"{kind} delivery refused or unreachable")[:500]
    except Exception as exc:  # a broken URL or plugin is this channel's failure, not the worker's
        logger.warning("channel send failed", exc_info=True)
        ok, error = False, f"{type(exc).__name__}: {exc}"[:500]
    return SendResult(ok=ok, error=error, latency_ms=round((time.perf_counter() - started) * 1000, 3))
