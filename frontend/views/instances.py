"""Instance pages: list (live status), create (config form generated from the version's
CONFIG_SCHEMA), detail (identity, config, runtime widgets, controls; tabs Overview, Execution
history, Live activity), and the control endpoints (mode, pause/resume, test run).

Controls call the same services as the REST API; refusals (an UPPER_SNAKE code) are shown as a
message, never as a traceback. htmx requests (`HX-Request`) get fragments, others full pages."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from frontend.access import tenant_view
from frontend.forms import InstanceConfigForm, InstanceCreateForm, LiveRequestForm, config_field_map
from frontend.selectors import (
    accounts_for_tenant,
    governance_status,
    graduation_panel,
    instance_actions,
    instance_market_candles,
    instance_open_positions,
    instance_performance,
    instance_rows,
    instance_runs,
    instance_runtime,
    markets_active,
    tenant_day_summary,
)
from stratbox.engine.control import PauseReason, instance_pause, instance_resume
from stratbox.engine.dry_run import test_run
from stratbox.engine.manual import NothingToClose, position_close
from stratbox.engine.selectors import instance_venue_panel
from stratbox.instances.selectors import instance_get
from stratbox.instances.services import instance_create as instance_create_service
from stratbox.instances.services import instance_set_mode, instance_update_config
from strategies_store.selectors import strategy_get_by_key, strategy_list, version_get, version_list
from tenants.errors import ApplicationError, form_add_error

logger = logging.getLogger(__name__)

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
    rows = instance_rows(tenant=request.tenant)  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/instances/list.html",
        {
            "rows": rows,
            "day": tenant_day_summary(rows),
            "can_write": request.membership.can_write,  # type: ignore[attr-defined]
            "pause_reasons": PAUSE_REASONS,
        },
    )


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
        "schema": version.config_schema_ordered if version else {},
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
            except ApplicationError as exc:
                if exc.status != 409:
                    form_add_error(form, exc, config_field_map(form))
                else:  # INSTANCE_QUOTA_EXCEEDED
                    form.add_error(None, str(exc))
                    return render(
                        request, "frontend/instances/create.html", {"form": form, **choices}, status=409
                    )
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


TABS = (("overview", "Overview"), ("history", "Execution history"), ("live", "Live activity"))

# How a pause reason reads to a person; the code itself is shown next to it.
PAUSE_REASONS = {reason.value: reason.label for reason in PauseReason}


def _back(request: HttpRequest, instance: Any) -> HttpResponse:
    """Back to where the control was used (the list posts `next`), else to the detail page."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("frontend:instance_detail", instance_id=instance.id)


@tenant_view(write=True)
def instance_detail(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    schema = instance.version.config_schema_ordered
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
            except ApplicationError as exc:
                form_add_error(form, exc, config_field_map(form))
            else:
                if updated.config_revision != instance.config_revision:
                    note = "Saved. The strategy reloads with the new config (its state resets)."
                elif updated.config != instance.config:
                    note = "Saved. Every changed config field is live: applied without a reload, state kept."
                else:
                    note = "Saved. The change applies on the next run, without a reload."
                messages.success(request, note)
                return redirect("frontend:instance_detail", instance_id=instance.id)
        status = 400
    else:
        form = InstanceConfigForm(schema=schema, values=instance.config, initial=_config_initial(instance))
    return render(
        request, "frontend/instances/detail.html", detail_context(request, instance, form), status=status
    )


def detail_context(request: HttpRequest, instance: Any, form: Any = None, **extra: Any) -> dict[str, Any]:
    """Everything the detail page shows; other views that answer with the page (the live-trading
    request form's refusals) pass their own form state in `extra`."""
    schema = instance.version.config_schema_ordered
    if form is None:
        form = InstanceConfigForm(schema=schema, values=instance.config, initial=_config_initial(instance))
    tenant = request.tenant  # type: ignore[attr-defined]
    can_write = request.membership.can_write  # type: ignore[attr-defined]
    tab = request.GET.get("tab", "overview")
    if tab not in dict(TABS):
        tab = "overview"
    runtime = instance_runtime(instance=instance)
    graduation = graduation_panel(tenant=tenant, instance=instance)
    if graduation is not None and "live_request_form" not in extra:
        extra["live_request_form"] = LiveRequestForm(live_accounts=graduation["live_accounts"])
    return {
        "instance": instance,
        "definition": instance.version.definition,
        "form": form,
        "controls": _mode_controls(instance, can_write),
        "can_write": can_write,
        "runtime": runtime,
        "pause_label": PAUSE_REASONS.get(runtime.get("pause_reason") or "", ""),
        "perf": instance_performance(tenant=tenant, instance=instance),
        "actions": instance_actions(tenant=tenant, instance=instance),
        "positions": instance_open_positions(tenant=tenant, instance=instance),
        "candles": instance_market_candles(tenant=tenant, instance=instance),
        "runs": instance_runs(tenant=tenant, instance=instance, params=request.GET),
        "governance": governance_status(tenant=tenant, instance=instance),
        "graduation": graduation,
        "venue_panel": instance_venue_panel(tenant=tenant, instance=instance),
        "tabs": TABS,
        "tab": tab,
        "live_fields": [n for n, spec in schema.items() if spec.get("live")],
        **extra,
    }


@require_GET
@tenant_view
def instance_runs_fragment(request: HttpRequest, instance_id: str) -> HttpResponse:
    """The execution history (filter + page), as the htmx fragment or inside the full page."""
    instance = _instance_or_404(request, instance_id)
    if not request.headers.get("HX-Request"):
        query = request.GET.copy()
        query["tab"] = "history"
        return redirect(f"{reverse('frontend:instance_detail', args=[instance.id])}?{query.urlencode()}")
    runs = instance_runs(tenant=request.tenant, instance=instance, params=request.GET)  # type: ignore[attr-defined]
    return render(request, "frontend/instances/_runs.html", {"instance": instance, "runs": runs})


@require_GET
@tenant_view
def instance_performance_fragment(request: HttpRequest, instance_id: str) -> HttpResponse:
    """The Performance card and the graduation box's track record (out of band), as fragments: the
    page refetches them when a fill is pushed, so both follow the ledger live, from one computation."""
    instance = _instance_or_404(request, instance_id)
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {
        "instance": instance,
        "perf": instance_performance(tenant=tenant, instance=instance),
        "runtime": instance_runtime(instance=instance),
        "graduation": graduation_panel(tenant=tenant, instance=instance),
        "positions": instance_open_positions(tenant=tenant, instance=instance),
        "candles": instance_market_candles(tenant=tenant, instance=instance),
        "can_write": request.membership.can_write,  # type: ignore[attr-defined]
        "oob": True,
    }
    return render(request, "frontend/instances/_performance_fragment.html", context)


@require_POST
@tenant_view(write=True)
def instance_mode(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    target = request.POST.get("mode", "")
    try:
        updated = instance_set_mode(instance=instance, actor=request.user, mode=target)
    except ApplicationError as exc:  # 400 an unknown mode, 409 InstanceConflict (e.g. activation while off)
        messages.error(request, exc.message if exc.status == 400 else f"{exc.message} [{exc.code}]")
    else:
        messages.success(request, f"{updated.name}: {MODE_ACTIONS.get(updated.mode, ('', updated.mode))[1]}")
    return _back(request, instance)


@require_POST
@tenant_view(write=True)
def instance_pause_view(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    try:
        changed = instance_pause(instance=instance, reason=PauseReason.USER, actor=request.user)
    except ApplicationError as err:
        messages.error(request, f"{err.message} [{err.code}]")
    else:
        messages.success(
            request,
            f"{instance.name} paused: no ticks, no orders, no rendering until resumed; its state is kept."
            if changed
            else f"{instance.name} was already paused.",
        )
    return _back(request, instance)


@require_POST
@tenant_view(write=True)
def instance_position_close(request: HttpRequest, instance_id: str, position_id: str) -> HttpResponse:
    """Close an open position at market, through the same risk gate as a strategy's orders."""
    instance = _instance_or_404(request, instance_id)
    try:
        result = position_close(instance=instance, position_id=position_id, actor=request.user)
    except NothingToClose as err:
        messages.error(request, str(err))
    else:
        if result.deny_code:
            messages.error(request, f"Close refused: {result.message} [{result.deny_code}]")
        elif result.status == "shadow":
            messages.success(request, "Observe mode: the close was recorded as a shadow order.")
        else:
            messages.success(request, f"Close order {result.status}.")
    return _back(request, instance)


@require_POST
@tenant_view(write=True)
def instance_resume_view(request: HttpRequest, instance_id: str) -> HttpResponse:
    instance = _instance_or_404(request, instance_id)
    try:
        changed = instance_resume(instance=instance, actor=request.user)
    except ApplicationError as err:
        messages.error(request, f"{err.message} [{err.code}]")
    else:
        messages.success(
            request, f"{instance.name} resumed." if changed else f"{instance.name} was not paused."
        )
    return _back(request, instance)


@require_POST
@tenant_view(write=True)
def instance_test_run(request: HttpRequest, instance_id: str) -> HttpResponse:
    """One dry cycle now (nothing reaches a broker); the result is shown inline through htmx."""
    instance = _instance_or_404(request, instance_id)
    try:
        run, extra = test_run(instance, actor=request.user)
    except Exception:  # the engine could not even start the run: say so, never a traceback
        logger.exception("test run of %s failed", instance.pk)
        context: dict[str, Any] = {"failure": "The test run could not be started. Please retry in a moment."}
    else:
        context = {"run": run, **extra}
    context["instance"] = instance
    if request.headers.get("HX-Request"):
        return render(request, "frontend/instances/_test_run.html", context)
    if "run" in context:
        status_word = "OK" if context["run"].status == "ok" else context["run"].status.upper()
        messages.info(request, f"Test run {status_word}: {len(context['run'].actions)} action(s).")
    else:
        messages.error(request, context["failure"])
    return redirect(f"{reverse('frontend:instance_detail', args=[instance.id])}?tab=history")
