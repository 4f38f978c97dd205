"""A live account at its venue: the balances and positions the venue reported at the last reconcile,
the reconcile's result, the discrepancies and what was done about each, the live orders with their
venue status and ids, the user stream's health, and "Reconcile now" (queued on a worker: the web
process never decrypts credentials or calls a venue). Another tenant's account is a 404."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from frontend.access import tenant_view
from stratbox.engine.selectors import account_venue_get, live_account_get
from stratbox.engine.venue_requests import account_reconcile_request
from stratbox.trading.models import AccountKind


@require_GET
@tenant_view
def live_account_detail(request: HttpRequest, account_id: str) -> HttpResponse:
    found = account_venue_get(tenant=request.tenant, account_id=account_id)  # type: ignore[attr-defined]
    if found is None or found.account.kind != AccountKind.LIVE:
        raise Http404("No such live account.")
    return render(request, "frontend/live_account.html", {"v": found, "last": found.reconcile})


@require_POST
@tenant_view(write=True)
def live_account_reconcile(request: HttpRequest, account_id: str) -> HttpResponse:
    account = live_account_get(tenant=request.tenant, account_id=account_id)  # type: ignore[attr-defined]
    if account is None:
        raise Http404("No such live account.")
    if account_reconcile_request(account=account, actor=request.user):
        messages.success(request, "Reconcile queued: a worker reads the venue; reload in a few seconds.")
    else:
        messages.info(request, "A reconcile was just requested; it is on its way.")
    return redirect("frontend:live_account_detail", account_id=account.pk)
