"""Instance pages: list, create (config form generated from the version's CONFIG_SCHEMA), detail
(identity read-only, config form with server errors by field, mode controls)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from rest_framework.exceptions import APIException, ValidationError

from frontend.access import tenant_view
from frontend.forms import InstanceConfigForm, InstanceCreateForm, add_service_errors
from frontend.selectors import accounts_for_tenant, markets_active
from stratbox.instances.selectors import instance_get
from stratbox.instances.selectors import instance_list as instance_list_query
from stratbox.instances.services import instance_create as instance_create_service
from stratbox.instances.services import instance_set_mode, instance_update_config
from strategies_store.selectors import strategy_get_by_key, strategy_list, version_get, version_list

MODE_ACTIONS = {
    # target mode -> (button label, message)
    "off": ("Power off", "Powered off: unloaded, no ticks, no orders."),
    "observe": (
        "Power on (observe)",
        "Observing: the strategy thinks, orders are recorded as shadow orders.",
    ),
    "active": ("Activate", "Active: orders reach the broker after risk and capital checks."),
}


@tenant_view
def instance_list(request: HttpRequest) -> HttpResponse:
    instances = instance_list_query(tenant=request.tenant)  # type: ignore[attr-defined]
    return render(request, "frontend/instances/list.html", {"instances": instances})


def _create_choices(request: HttpRequest, key: str, number: Any) -> dict[str, Any]:
    """The selectable strategies/versions/accounts/markets and the schema of the chosen version."""
    tenant = request.tenant  # type: ignore[attr-defined]
    strategies = list(strategy_list(tenant=tenant))
    definition = strategy_get_by_key(tenant=tenant, key=key) if key else None
    versions = list(version_list(definition=definition)) if definition else []
    version = None
    if definition is not None:
        version = version_get(definition=definition, number=number) if number else None
        version = version or (versions[0] if versions else None)
    return {
        "strategies": strategies,
        "versions": versions,
        "accounts": accounts_for_tenant(tenant=tenant),
        "markets": markets_active(),
        "schema": (version.config_schema or {}) if version else {},
        "definition": definition,
        "version": version,
    }


@tenant_view(write=True)
def instance_create(request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    key = source.get("strategy", "")
    choices = _create_choices(request, key, source.get("version"))
    form_kwargs = {k: choices[k] for k in ("strategies", "versions", "accounts", "markets", "schema")}
    status = 200
    if request.method == "POST":
        form = InstanceCreateForm(request.POST, **form_kwargs)
        if form.is_valid():
            data = form.cleaned_data
            try:
                instance = instance_create_service(
                    tenant=request.tenant,  # type: ignore[attr-defined]
                    actor=request.user,
                    name=data["name"],
                    strategy_key=data["strategy"],
                    version_number=data["version"],
                    account_id=data["account"],
                    market_id=int(data["market"]),
                    config=form.config(),
                    **form.allocation(),
                )
            except ValidationError as exc:
                add_service_errors(form, exc.detail)
            else:
                messages.success(
                    request, f"Created instance {instance.name}. It is off: power it on to observe."
                )
                return redirect("frontend:instance_detail", instance_id=instance.id)
        status = 400
    else:
        initial = {"strategy": key}
        if choices["version"] is not None:
            initial["version"] = choices["version"].number
        form = InstanceCreateForm(initial=initial, **form_kwargs)
    return render(request, "frontend/instances/create.html", {"form": form, **choices}, status=status)


def _instance_or_404(request: HttpRequest, instance_id: Any) -> Any:
    instance = instance_get(tenant=request.tenant, instance_id=instance_id)  # type: ignore[attr-defined]
    if instance is None:
        raise Http404("No such instance.")
    return instance


def _config_initial(instance: Any) -> dict[str, Any]:
    return {
        "name": instance.name,
        **{f: getattr(instance, f) for f in InstanceConfigForm.ALLOCATION},
    }


def _mode_controls(instance: Any, can_write: bool) -> list[dict[str, Any]]:
    """Power toggle off <-> observe; activation observe <-> active, disabled while off."""
    mode = instance.mode
    controls = []
    if mode == "off":
        controls.append({"mode": "observe", "label": MODE_ACTIONS["observe"][0], "style": "go"})
        controls.append(
            {
                "mode": "active",
                "label": "Activate",
                "style": "secondary",
                "disabled": True,
                "reason": "Activation is disabled while the instance is off; power it on (observe) first.",
            }
        )
    elif mode == "observe":
        controls.append(
            {
                "mode": "active",
                "label": "Activate",
                "style": "go",
                "confirm": f"Activate {instance.name}? Orders will reach the {instance.account.kind} broker.",
            }
        )
        controls.append({"mode": "off", "label": MODE_ACTIONS["off"][0], "style": "danger"})
    else:
        controls.append({"mode": "observe", "label": "Deactivate (observe)", "style": "secondary"})
        controls.append({"mode": "off", "label": MODE_ACTIONS["off"][0], "style": "danger"})
    if not can_write:
        for control in controls:
            control["disabled"] = True
            control["reason"] = "Viewers have read-only access."
    return controls


@tenant_view(write=True)
def instance_detail(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    schema = instance.version.config_schema or {}
    status = 200
    if request.method == "POST":
        form = InstanceConfigForm(
            request.POST, schema=schema, values=instance.config, initial=_config_initial(instance)
        )
        if form.is_valid():
            try:
                updated = instance_update_config(
                    instance=instance,
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    config=form.config(),
                    **form.allocation(),
                )
            except ValidationError as exc:
                add_service_errors(form, exc.detail)
            else:
                reloaded = updated.config_revision != instance.config_revision
                messages.success(
                    request,
                    "Saved. The instance reloads with the new config (state reset)."
                    if reloaded
                    else "Saved. The change applies on the next run, without a reload.",
                )
                return redirect("frontend:instance_detail", instance_id=instance.id)
        status = 400
    else:
        form = InstanceConfigForm(schema=schema, values=instance.config, initial=_config_initial(instance))
    can_write = request.membership.can_write  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/instances/detail.html",
        {
            "instance": instance,
            "form": form,
            "controls": _mode_controls(instance, can_write),
            "can_write": can_write,
        },
        status=status,
    )


@require_POST
@tenant_view(write=True)
def instance_mode(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    target = request.POST.get("mode", "")
    try:
        updated = instance_set_mode(instance=instance, actor=request.user, mode=target)
    except ValidationError as exc:
        detail = exc.detail.get("mode", exc.detail) if isinstance(exc.detail, dict) else exc.detail
        messages.error(request, " ".join(str(m) for m in (detail if isinstance(detail, list) else [detail])))
    except APIException as exc:  # InstanceConflict (409): e.g. activation while off
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else ""
        messages.error(request, f"{exc.detail}{f' [{code}]' if code else ''}")
    else:
        messages.success(request, MODE_ACTIONS.get(updated.mode, ("", f"Mode: {updated.mode}"))[1])
    return redirect("frontend:instance_detail", instance_id=instance.id)
