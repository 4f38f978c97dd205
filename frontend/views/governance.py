"""Live-trading governance pages: the tenant's request form (on a paper instance's detail page)
and the staff approval queue (`/staff/live-requests/`, `is_staff` only).

Both go through `stratbox.governance.services` exactly like the REST API: the services decide
(graduation criteria, one pending request per instance, reasons, stale requests); the views only
turn their refusals into messages and field errors — each with its UPPER_SNAKE code.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from frontend.access import staff_view, tenant_view
from frontend.forms import LiveRequestForm
from frontend.selectors import graduation_panel, staff_queue, staff_request_detail
from frontend.views.instances import _instance_or_404, detail_context
from stratbox.governance.models import RequestStatus
from stratbox.governance.selectors import staff_live_request_get
from stratbox.governance.services import (
    RevokeOutcome,
    live_request_approve,
    live_request_create,
    live_request_reject,
    live_request_revoke,
)
from tenants.errors import ApplicationError


def _codes(exc: ApplicationError, field: str | None = None) -> list[tuple[str, str]]:
    """(CODE, message) pairs of a refusal's messages (only `field`'s when it names any)."""
    items = [(path, item) for path, item in exc.messages()]
    if field is not None and any(path == field for path, _ in items):
        items = [(path, item) for path, item in items if path == field]
    return [(item.code.upper(), item.message) for _, item in items]


@require_POST
@tenant_view(write=True)
def instance_live_request(request: HttpRequest, instance_id: str) -> HttpResponse:
    """Request live trading for a paper instance; a refusal re-renders the page with its reasons."""
    instance = _instance_or_404(request, instance_id)
    tenant = request.tenant  # type: ignore[attr-defined]
    panel = graduation_panel(tenant=tenant, instance=instance)
    live_accounts = panel["live_accounts"] if panel else []
    form = LiveRequestForm(request.POST, live_accounts=live_accounts)
    refusal: list[tuple[str, str]] = []
    if form.is_valid():
        try:
            live_request_create(
                tenant=tenant,
                actor=request.user,
                instance=instance,
                live_account_id=form.cleaned_data["live_account"],
                note=form.cleaned_data["note"],
            )
        except ApplicationError as exc:
            if exc.status == 400:
                for path, item in exc.messages():
                    if path == "live_account":
                        form.add_error("live_account", item.message)
                    else:  # the unmet criteria, each with its code
                        refusal.append((item.code.upper(), item.message))
            else:  # 409 REQUEST_PENDING
                refusal.append((exc.code, exc.message))
        else:
            messages.success(
                request,
                "Live trading requested: staff review the track record, code and config. "
                "The decision appears on this page.",
            )
            return redirect("frontend:instance_detail", instance_id=instance.id)
    context = detail_context(request, instance, live_request_form=form, live_request_refusal=refusal)
    return render(request, "frontend/instances/detail.html", context, status=400)


# --- staff ------------------------------------------------------------------------------------

STATUS_FILTERS = [("", "All"), *RequestStatus.choices]


@require_GET
@staff_view
def staff_live_requests(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    if status not in RequestStatus.values:
        status = ""
    rows = staff_queue(status=status or None)
    return render(
        request,
        "frontend/staff/live_requests.html",
        {
            "rows": rows,
            "status": status,
            "status_filters": STATUS_FILTERS,
            "pending": sum(1 for r in rows if r.request.status == RequestStatus.PENDING),
        },
    )


def _staff_detail(request: HttpRequest, request_id: Any, **extra: Any) -> dict[str, Any]:
    detail = staff_request_detail(request_id=request_id)
    if detail is None:
        raise Http404("No such live-trading request.")
    return {**detail, "req": detail["row"].request, "decision_errors": {}, "reasons": {}, **extra}


@require_GET
@staff_view
def staff_live_request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    return render(request, "frontend/staff/live_request_detail.html", _staff_detail(request, request_id))


DECISIONS = {
    # action -> (service, success message)
    "approve": (live_request_approve, "Approved: the live instance was created in observe mode."),
    "reject": (live_request_reject, "Rejected: the tenant sees the reason on the instance page."),
    "revoke": (
        live_request_revoke,
        "Revoked: every order of the live instance is denied from now on (NOT_APPROVED).",
    ),
}


@require_POST
@staff_view
def staff_live_request_decide(request: HttpRequest, request_id: str, action: str) -> HttpResponse:
    """Approve / reject / revoke through the governance services; a refusal keeps the page."""
    if action not in DECISIONS:
        raise Http404("Unknown decision.")
    found = staff_live_request_get(request_id=request_id)
    if found is None:
        raise Http404("No such live-trading request.")
    service, success = DECISIONS[action]
    reason = request.POST.get("reason", "")
    try:
        outcome = service(request=found, actor=request.user, reason=reason)
    except ApplicationError as exc:
        if exc.status == 400:  # the reason is required to reject and to revoke
            message = " ".join(f"{m} [{c}]" if c else m for c, m in _codes(exc, "reason"))
            context = _staff_detail(
                request, request_id, decision_errors={action: message}, reasons={action: reason}
            )
            return render(request, "frontend/staff/live_request_detail.html", context, status=400)
        # 409: REQUEST_NOT_PENDING, REQUEST_STALE, REQUEST_NOT_APPROVED
        messages.error(request, f"{exc.message} [{exc.code or 'REFUSED'}]")
    else:
        if isinstance(outcome, RevokeOutcome):
            if outcome.paused:
                success += " The live instance was paused (APPROVAL_REVOKED)."
            elif outcome.demoted:
                success += " The live instance was not running: it was moved from active to observe."
        messages.success(request, success)
    return redirect("frontend:staff_live_request_detail", request_id=found.pk)
