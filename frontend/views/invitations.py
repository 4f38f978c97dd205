"""The page behind an invitation link: the signed-in user sees what they are invited to, and accepts.

Accepting creates the membership (their consent) and switches the session to that tenant. A link
that is unknown, used, expired or meant for another address says so, without more detail.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from tenants.errors import ApplicationError
from tenants.invitations import invitation_accept, invitation_get_by_token
from tenants.scoping import SESSION_TENANT_KEY


@login_required
def invitation_accept_page(request: HttpRequest, token: str) -> HttpResponse:
    invitation = invitation_get_by_token(token=token)
    mine = invitation is not None and invitation.email == (request.user.email or "").strip().lower()  # type: ignore[union-attr]
    if request.method == "POST":
        try:
            membership = invitation_accept(token=token, user=request.user)  # type: ignore[arg-type]
        except ApplicationError as exc:
            return render(
                request,
                "frontend/invitation.html",
                {"invitation": None, "error": str(exc)},
                status=404,
            )
        request.session[SESSION_TENANT_KEY] = str(membership.tenant_id)
        messages.success(request, f"You joined {membership.tenant.name} as {membership.role}.")
        return redirect("frontend:home")
    return render(
        request,
        "frontend/invitation.html",
        {"invitation": invitation if mine else None, "error": None},
        status=200 if mine else 404,
    )
