"""Who the web UI acts for: the logged-in user's tenant membership, resolved once per request.

Views wrap themselves in `tenant_view` (read pages) or `tenant_view(write=True)` (pages that
change something). Viewers may look but not write; a user without any membership gets a clear
403 page rather than a traceback. Selectors always receive `request.tenant`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.scoping import membership_for_request

View = Callable[..., HttpResponse]


def forbidden(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "frontend/forbidden.html", {"message": message}, status=403)


def tenant_view(view: View | None = None, *, write: bool = False) -> Any:
    """Require a login and a tenant membership; with `write=True`, refuse viewers on POST."""

    def decorate(func: View) -> View:
        @login_required
        @wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_for_request(request)
            if membership is None:
                return forbidden(request, "Your user is not a member of any tenant.")
            request.membership = membership  # type: ignore[attr-defined]
            request.tenant = membership.tenant  # type: ignore[attr-defined]
            request._stratbox_membership = membership  # type: ignore[attr-defined]  # the nav's tag reuses it
            if write and request.method == "POST" and not membership.can_write:
                return forbidden(request, "Viewers have read-only access.")
            return func(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def staff_view(func: View) -> View:
    """Require a login (anonymous -> the login page) and `is_staff` (anyone else -> 403).

    Staff pages are cross-tenant by design and never look at a membership: a staff user acts as
    staff, not as a member of a tenant."""

    @login_required
    @wraps(func)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            return forbidden(request, "This page is for Stratbox staff only.")
        return func(request, *args, **kwargs)

    return wrapper
