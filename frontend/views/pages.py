"""Home and tenant settings: members and roles, API tokens (shown once), the kill switch.

The rules (last owner, who may see which token, what the kill switch pauses) live in the
`tenants` and `engine` services; these views check the role the way the REST API does (owners
manage members and the kill switch; members and owners create tokens; everyone may revoke a
token they can see) and show refusals as messages.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.access import forbidden, tenant_view
from frontend.throttling import form_throttled
from stratbox.engine.control import tenant_kill_switch
from stratbox.trading.models import AccountKind
from stratbox.trading.selectors import account_list
from stratbox.trading.services.accounts import account_create
from tenants.errors import ApplicationError, form_add_error
from tenants.invitations import invitation_create
from tenants.models import Role
from tenants.scopes import TokenScope
from tenants.scoping import membership_for_request
from tenants.selectors import membership_get_in_tenant, membership_list, token_get_visible, token_list_visible
from tenants.services import (
    membership_delete,
    membership_set_role,
    token_create,
    token_revoke,
)
from tenants.throttling import TokenCreateThrottle


class MemberAddForm(forms.Form):
    email = forms.EmailField(label="Email of an existing user")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label="Role")


class LiveAccountForm(forms.Form):
    name = forms.CharField(max_length=80, label="Account name")
    broker = forms.CharField(
        max_length=40, label="Broker adapter", help_text="e.g. “ccxt:binance”; live orders need an adapter."
    )
    starting_balance = forms.DecimalField(
        max_digits=18, decimal_places=2, min_value=0, initial=0, label="Starting balance"
    )
    api_key = forms.CharField(max_length=500, required=False, label="API key")
    api_secret = forms.CharField(
        max_length=500, required=False, label="API secret", widget=forms.PasswordInput(render_value=False)
    )

    def credentials(self) -> dict[str, str] | None:
        pairs = {"api_key": self.cleaned_data["api_key"], "api_secret": self.cleaned_data["api_secret"]}
        return {k: v for k, v in pairs.items() if v} or None


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name", help_text="What uses it, e.g. “CI bot”.")
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Scopes",
        help_text="What the token may do. Read is always included; tick nothing for a read-only token.",
    )


def home(request: HttpRequest) -> HttpResponse:
    """Members land on their instances, staff who belong to no tenant on the review queue, and an
    anonymous visitor on a page that says what Stratbox is, with the way in."""
    if request.user.is_authenticated:
        if request.user.is_staff and membership_for_request(request) is None:
            return redirect("frontend:staff_live_requests")
        return redirect("frontend:instance_list")
    return render(request, "frontend/landing.html")


def _settings_page(
    request: HttpRequest,
    *,
    member_form: MemberAddForm | None = None,
    token_form: TokenCreateForm | None = None,
    account_form: LiveAccountForm | None = None,
    new_token: str | None = None,
    status: int = 200,
) -> HttpResponse:
    membership = request.membership  # type: ignore[attr-defined]
    tenant = membership.tenant
    return render(
        request,
        "frontend/settings.html",
        {
            "tenant": tenant,
            "is_owner": membership.role == Role.OWNER,
            "members": membership_list(tenant=tenant).order_by("user__email"),
            "roles": Role.choices,
            "tokens": token_list_visible(membership=membership).filter(revoked_at__isnull=True),
            "member_form": member_form or MemberAddForm(prefix="member"),
            "token_form": token_form or TokenCreateForm(prefix="token"),
            "accounts": account_list(tenant=tenant).order_by("kind", "name"),
            "account_form": account_form or LiveAccountForm(prefix="account"),
            "new_token": new_token,
        },
        status=status,
    )


@tenant_view
def tenant_settings(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


def _owner_only(request: HttpRequest) -> HttpResponse | None:
    if request.membership.role != Role.OWNER:  # type: ignore[attr-defined]
        return forbidden(request, "Only owners of the tenant can do this.")
    return None


def _rule_message(exc: ApplicationError) -> str:
    return f"{exc}{f' [{exc.code}]' if exc.code else ''}"


@require_POST
@tenant_view(write=True)
def member_add(request: HttpRequest) -> HttpResponse:
    if (refused := _owner_only(request)) is not None:
        return refused
    form = MemberAddForm(request.POST, prefix="member")
    if form.is_valid():
        try:
            issued = invitation_create(
                tenant=request.tenant,  # type: ignore[attr-defined]
                actor=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/").rstrip("/"),
            )
        except ApplicationError as exc:
            form.add_error("email", _rule_message(exc))
        else:
            # The same answer whether or not the address has an account: nothing is revealed.
            messages.success(
                request,
                f"Invited {issued.invitation.email} as {issued.invitation.role}: they join when they accept "
                "the emailed link.",
            )
            return redirect("frontend:settings")
    return _settings_page(request, member_form=form, status=400)


def _member_or_404(request: HttpRequest, membership_id: int) -> Any:
    member = membership_get_in_tenant(tenant=request.tenant, membership_id=membership_id)  # type: ignore[attr-defined]
    if member is None:
        raise Http404("No such member.")
    return member


@require_POST
@tenant_view(write=True)
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    if (refused := _owner_only(request)) is not None:
        return refused
    member = _member_or_404(request, membership_id)
    role = request.POST.get("role", "")
    if role not in Role.values:
        messages.error(request, f"Unknown role {role!r}: choose one of {', '.join(Role.values)}.")
        return redirect("frontend:settings")
    try:
        membership_set_role(membership=member, actor=request.user, role=role)
    except ApplicationError as exc:
        messages.error(request, _rule_message(exc))
    else:
        messages.success(request, f"{member.user.email} is now {role}.")
    return redirect("frontend:settings")


@require_POST
@tenant_view(write=True)
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    if (refused := _owner_only(request)) is not None:
        return refused
    member = _member_or_404(request, membership_id)
    try:
        membership_delete(membership=member, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, _rule_message(exc))
    else:
        messages.success(
            request, f"Removed {member.user.email}; their API tokens for this tenant are revoked."
        )
    return redirect("frontend:settings")


@require_POST
@tenant_view(write=True)
def live_account_add(request: HttpRequest) -> HttpResponse:
    """Owners add a live account; credentials are encrypted at rest and never shown again."""
    if (refused := _owner_only(request)) is not None:
        return refused
    form = LiveAccountForm(request.POST, prefix="account")
    if form.is_valid():
        tenant = request.tenant  # type: ignore[attr-defined]
        try:
            account = account_create(
                tenant=tenant,
                actor=request.user,
                kind=AccountKind.LIVE,
                name=form.cleaned_data["name"],
                broker=form.cleaned_data["broker"],
                starting_balance=form.cleaned_data["starting_balance"],
                credentials=form.credentials(),
            )
        except ApplicationError as exc:
            form_add_error(form, exc, {"credentials": "api_key"})
        else:
            messages.success(
                request, f"Live account “{account.name}” added. It trades only with a staff approval."
            )
            return redirect("frontend:settings")
    return _settings_page(request, account_form=form, status=400)


@require_POST
@tenant_view(write=True)
def token_add(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST, prefix="token")
    if form_throttled(request, TokenCreateThrottle, form):
        return _settings_page(request, token_form=form, status=429)
    if not form.is_valid():
        return _settings_page(request, token_form=form, status=400)
    issued = token_create(
        tenant=request.tenant,  # type: ignore[attr-defined]
        user=request.user,
        name=form.cleaned_data["name"],
        scopes=form.cleaned_data["scopes"],
    )
    # Rendered, not redirected: the plaintext exists only in this response, never in a session.
    response = _settings_page(request, new_token=issued.plaintext)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@tenant_view
def token_remove(request: HttpRequest, token_id: str) -> HttpResponse:
    token = token_get_visible(membership=request.membership, token_id=token_id)  # type: ignore[attr-defined]
    if token is None:
        raise Http404("No such token.")
    token_revoke(token=token, actor=request.user)
    messages.success(request, f"Revoked the token “{token.name}” (sbx_{token.prefix}_…).")
    return redirect("frontend:settings")


@require_POST
@tenant_view(write=True)
def kill_switch(request: HttpRequest) -> HttpResponse:
    if (refused := _owner_only(request)) is not None:
        return refused
    on = request.POST.get("on") == "1"
    tenant_kill_switch(tenant=request.tenant, on=on, actor=request.user)  # type: ignore[attr-defined]
    if on:
        messages.warning(request, "Kill switch ON: every instance of the tenant is paused; nothing trades.")
    else:
        messages.success(
            request,
            "Kill switch off: instances it paused resume; instances paused for another reason stay paused.",
        )
    return redirect("frontend:settings")
