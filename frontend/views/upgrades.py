"""Upgrade (or roll back) an instance to another version of its strategy from its page.

The rules (config migration, reload, live approval) live in `instances.services.instance_upgrade`;
this view shows its report or its refusal as messages.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from frontend.access import tenant_view
from frontend.views.instances import _back, _instance_or_404
from stratbox.instances.services import instance_upgrade
from tenants.errors import ApplicationError


@require_POST
@tenant_view(write=True)
def instance_upgrade_view(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    try:
        number = int(request.POST.get("version", ""))
    except ValueError:
        messages.error(request, "Choose a version number.")
        return _back(request, instance)
    try:
        _, report = instance_upgrade(
            instance=instance,
            actor=request.user,
            version_number=number,
            keep_state=request.POST.get("keep_state") == "on",
        )
    except ApplicationError as exc:
        lines = [f"{path}: {item.message}" if path else item.message for path, item in exc.messages()]
        messages.error(request, f"Upgrade refused [{exc.code}] — " + "; ".join(lines))
    else:
        config = report.as_json()["config"]
        parts = [f"Now on v{report.to_version} (was v{report.from_version})."]
        if config["added"]:
            parts.append("New fields: " + ", ".join(f"{k}={v!r}" for k, v in config["added"].items()) + ".")
        if config["removed"]:
            parts.append("Removed fields: " + ", ".join(config["removed"]) + ".")
        parts.append("State carried into on_load." if report.keep_state else "State reset (init).")
        if report.live_trading_paused:
            parts.append("Live trading stopped until staff approve the new version.")
        messages.success(request, " ".join(parts))
    return _back(request, instance)
