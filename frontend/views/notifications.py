"""Web UI for plugins (artifact upload on the instance page) and notifications (channels, Test send,
subscriptions, the delivery log and the inbox). Thin: parse a form, call one service, redirect."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.access import tenant_view
from stratbox.instances.selectors import instance_get, instance_list
from stratbox.notifications import selectors, services
from stratbox.notifications.models import EventType, Level, Locale
from stratbox.plugins.models import ArtifactSource
from stratbox.plugins.services import PluginError, artifact_push
from stratbox.trading.credentials import CredentialsUnavailable

MAX_UPLOAD = 512 * 1024
SUBSCRIBABLE = [
    (v, label) for v, label in EventType.choices if v not in ("test", "digest", "channel_disabled")
]


@require_POST
@tenant_view(write=True)
def instance_plugin_upload(request: HttpRequest, instance_id: Any) -> HttpResponse:
    instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
    if instance is None:
        raise Http404("No such instance.")
    upload = request.FILES.get("artifact")
    if upload is None or upload.size > MAX_UPLOAD:
        messages.error(request, "Choose a latest_signal.json file (at most 512 KB).")
        return redirect("frontend:instance_detail", instance_id=instance.id)
    try:
        artifact = artifact_push(
            tenant=request.tenant,  # type: ignore[attr-defined]
            raw=upload.read(),
            actor=request.user,
            instance=instance,
            source=ArtifactSource.UPLOAD,
        )
    except PluginError as err:
        messages.error(request, f"Artifact refused: {err.message} [{err.code}]")
    else:
        note = f"Artifact accepted: {artifact.plugin} {artifact.canonical_route}/{artifact.suggested_action}"
        if artifact.stale:
            note += " (stale: treated as blocked)"
        if artifact.escalated:
            note += "; an alert was raised"
        messages.success(request, note + ".")
    return redirect("frontend:instance_detail", instance_id=instance.id)


@tenant_view
def notifications_page(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {
        "channels": selectors.channel_list(tenant=tenant),
        "subscriptions": selectors.subscription_list(tenant=tenant),
        "deliveries": selectors.delivery_list(tenant=tenant)[:50],
        "inbox": selectors.inbox_list(tenant=tenant)[:30],
        "unread": selectors.inbox_unread_count(tenant=tenant),
        "settings": services.settings_for(tenant),
        "locales": Locale.choices,
        "event_types": SUBSCRIBABLE,
        "levels": Level.choices,
        "instances": instance_list(tenant=tenant),
        "can_write": request.membership.can_write,  # type: ignore[attr-defined]
        "secret": request.session.pop("stratbox_channel_secret", None),
    }
    return render(request, "frontend/notifications/index.html", context)


@require_POST
@tenant_view(write=True)
def channel_add(request: HttpRequest) -> HttpResponse:
    name = (request.POST.get("name") or "").strip()[:80] or "channel"
    try:
        channel, secret = services.channel_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            name=name,
            url=(request.POST.get("url") or "").strip(),
        )
    except services.NotificationError as err:
        messages.error(request, f"{err.message} [{err.code}]")
    except CredentialsUnavailable as exc:
        messages.error(request, str(exc))
    else:
        if secret:
            request.session["stratbox_channel_secret"] = {"name": channel.name, "secret": secret}
        messages.success(request, f"Channel {channel.name} added ({channel.url_redacted}).")
    return redirect("frontend:notifications")


def _channel_or_404(request: HttpRequest, channel_id: Any) -> Any:
    channel = selectors.channel_get(tenant=request.tenant, channel_id=channel_id)  # type: ignore[attr-defined]
    if channel is None:
        raise Http404("No such channel.")
    return channel


@require_POST
@tenant_view(write=True)
def channel_test(request: HttpRequest, channel_id: Any) -> HttpResponse:
    channel = _channel_or_404(request, channel_id)
    services.channel_test(channel=channel, actor=request.user)
    messages.success(request, f"Test send queued for {channel.name}; its delivery appears in the log below.")
    return redirect("frontend:notifications")


@require_POST
@tenant_view(write=True)
def channel_toggle(request: HttpRequest, channel_id: Any) -> HttpResponse:
    channel = _channel_or_404(request, channel_id)
    services.channel_set_enabled(
        channel=channel, actor=request.user, enabled=request.POST.get("enabled") == "1"
    )
    return redirect("frontend:notifications")


@require_POST
@tenant_view(write=True)
def subscription_add(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    channel = _channel_or_404(request, request.POST.get("channel"))
    instance = None
    if request.POST.get("instance"):
        instance = instance_get(tenant=tenant, instance_id=request.POST["instance"])
        if instance is None:
            raise Http404("No such instance.")
    level = request.POST.get("level") or ""
    if level not in Level.values:
        messages.error(request, "Choose on, silent or off.")
        return redirect("frontend:notifications")
    try:
        services.subscription_set(
            tenant=tenant,
            actor=request.user,
            channel=channel,
            event_type=request.POST.get("event_type") or "",
            level=level,
            instance=instance,
        )
    except services.NotificationError as err:
        messages.error(request, f"{err.message} [{err.code}]")
    return redirect("frontend:notifications")


@require_POST
@tenant_view(write=True)
def notification_settings(request: HttpRequest) -> HttpResponse:
    locale = request.POST.get("locale")
    if locale in Locale.values:
        services.settings_update(tenant=request.tenant, actor=request.user, locale=locale)  # type: ignore[attr-defined]
        messages.success(request, "Saved.")
    return redirect("frontend:notifications")


@require_POST
@tenant_view
def inbox_read(request: HttpRequest) -> HttpResponse:
    services.inbox_mark_read(tenant=request.tenant)  # type: ignore[attr-defined]
    return redirect("frontend:notifications")
