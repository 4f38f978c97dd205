"""Home and tenant settings."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from frontend.access import tenant_view
from tenants.selectors import membership_list, token_list


def home(request: HttpRequest) -> HttpResponse:
    """Logged-in users land on their instances; everyone else on the login page."""
    if request.user.is_authenticated:
        return redirect("frontend:instance_list")
    return redirect("account_login")


@tenant_view
def tenant_settings(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/settings.html",
        {
            "tenant": tenant,
            "members": membership_list(tenant=tenant),
            "tokens": token_list(tenant=tenant).filter(revoked_at__isnull=True),
        },
    )
