"""Writes for tenants: signup, tenant settings, memberships, tokens, audit.

Each service owns its transaction and writes its own audit event.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tenants.access_events import access_changed_on_commit
from tenants.errors import ApplicationError
from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant
from tenants.scopes import DEFAULT_SCOPES, normalise_scopes

TOKEN_PREFIX = "sbx"  # noqa: S105 - a visible marker, not a secret


AuditSubscriber = Callable[[AuditEvent], None]
# Registered once per process from an AppConfig.ready() (notifications): apps above `tenants`
# hear about audited actions without `tenants` importing them.
_audit_subscribers: list[AuditSubscriber] = []


def subscribe_audit(callback: AuditSubscriber) -> None:
    """Call `callback(event)` for every audit event, inside the transaction that records it."""
    if callback not in _audit_subscribers:
        _audit_subscribers.append(callback)


def audit_record(
    *,
    tenant: Tenant | None,
    actor: AbstractBaseUser | None,
    action: str,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    before: Any = None,
    after: Any = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one audit event. `target` (a model instance) fills target_type/target_id."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_label = actor_label or actor.get_username()
        actor_obj = actor
    else:
        actor_obj = None
        actor_label = actor_label or "system"
    event = AuditEvent.objects.create(
        tenant=tenant,
        actor=actor_obj,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
    )
    for callback in _audit_subscribers:
        callback(event)
    return event


@transaction.atomic
def tenant_create(*, name: str, owner: AbstractBaseUser) -> Tenant:
    """Create a tenant with `owner` as its owner (used at signup and by the demo bootstrap)."""
    tenant = Tenant.objects.create(name=name)
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    audit_record(tenant=tenant, actor=owner, action="tenant.create", target=tenant, after={"name": name})
    return tenant


def token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


@transaction.atomic
def token_create(
    *,
    tenant: Tenant,
    user: AbstractBaseUser,
    name: str,
    scopes: Iterable[str] | None = None,
    created_with: ApiToken | None = None,
) -> IssuedToken:
    """Issue a token with `scopes` (default: read only; `read` is always included).

    `created_with` is the token the request itself was authenticated with, if any: a token can
    never mint a token with a scope it does not hold itself (no escalation through the API).
    """
    try:
        clean_scopes = normalise_scopes(DEFAULT_SCOPES if scopes is None else scopes)
    except ValueError as exc:
        raise TenantRuleError("UNKNOWN_SCOPE", str(exc), field="scopes") from exc
    if created_with is not None:
        beyond = [scope for scope in clean_scopes if scope not in (created_with.scopes or ())]
        if beyond:
            raise TenantRuleError(
                "SCOPE_ESCALATION",
                f"A token cannot grant scopes it does not hold: {', '.join(beyond)}.",
                field="scopes",
            )
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        tenant=tenant,
        user=user,
        name=name,
        prefix=prefix,
        digest=token_digest(plaintext),
        scopes=clean_scopes,
    )
    audit_record(
        tenant=tenant,
        actor=user,
        action="token.create",
        target=token,
        after={"name": name, "prefix": prefix, "scopes": clean_scopes},
    )
    return IssuedToken(token=token, plaintext=plaintext)


def token_mark_used(token: ApiToken, *, resolution_seconds: int = 60) -> None:
    """Record that the token was used (shown as "last used"); at most one write per `resolution_seconds`."""
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > resolution_seconds:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: AbstractBaseUser) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            tenant=token.tenant,
            actor=actor,
            action="token.revoke",
            target=token,
            before={"prefix": token.prefix},
        )
        access_changed_on_commit(token_id=token.pk, reason="token_revoked")
    return token


# --- errors -------------------------------------------------------------------------------


class TenantRuleError(ApplicationError):
    """A tenant rule refused the write (HTTP 400); `code` is an UPPER_SNAKE reason shown verbatim."""


LAST_OWNER = "LAST_OWNER"
USER_NOT_FOUND = "USER_NOT_FOUND"
ALREADY_MEMBER = "ALREADY_MEMBER"


# --- tenant -------------------------------------------------------------------------------


def _locked_tenant(tenant: Tenant) -> Tenant:
    # Every membership/limit change of a tenant takes this row lock first, so two concurrent
    # demotions cannot both see "another owner is left" and leave the tenant without one.
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


@transaction.atomic
def tenant_update(*, tenant: Tenant, actor: AbstractBaseUser, name: str) -> Tenant:
    """Rename a tenant (owners, through the API)."""
    locked = _locked_tenant(tenant)
    if locked.name != name:
        before = locked.name
        locked.name = name
        locked.save(update_fields=["name"])
        audit_record(
            tenant=locked,
            actor=actor,
            action="tenant.update",
            target=locked,
            before={"name": before},
            after={"name": name},
        )
    return locked


@transaction.atomic
def tenant_set_capital_limit(*, tenant: Tenant, actor: AbstractBaseUser, capital_limit: Decimal) -> Tenant:
    """Staff-only (Django admin): change the ceiling on the capital a tenant may deploy."""
    capital_limit = Decimal(capital_limit)
    if capital_limit < 0:
        raise TenantRuleError(
            "NEGATIVE_CAPITAL_LIMIT", "The capital limit cannot be negative.", field="capital_limit"
        )
    locked = _locked_tenant(tenant)
    if locked.capital_limit != capital_limit:
        before = locked.capital_limit
        locked.capital_limit = capital_limit
        locked.save(update_fields=["capital_limit"])
        audit_record(
            tenant=locked,
            actor=actor,
            action="tenant.capital_limit",
            target=locked,
            before={"capital_limit": str(before)},
            after={"capital_limit": str(capital_limit)},
        )
    return locked


@transaction.atomic
def tenant_signup(*, user: AbstractBaseUser) -> Tenant:
    """The workspace every new account starts with (called by the allauth adapter)."""
    tenant = tenant_create(name=f"{user.email.split('@')[0]}'s workspace", owner=user)
    audit_record(tenant=tenant, actor=user, action="account.signup", target=user, after={"email": user.email})
    return tenant


# --- memberships ----------------------------------------------------------------------------


def _membership_snapshot(membership: Membership) -> dict[str, Any]:
    return {"email": membership.user.email, "role": membership.role}


def _other_owner_exists(*, tenant: Tenant, membership: Membership) -> bool:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).exclude(pk=membership.pk).exists()


def membership_is_last_owner(*, membership: Membership) -> bool:
    """Would removing or demoting this membership leave its tenant without an owner?

    Forms use it to refuse early; the services re-check under the tenant row lock.
    """
    return membership.role == Role.OWNER and not _other_owner_exists(
        tenant=membership.tenant, membership=membership
    )


@transaction.atomic
def membership_create(*, tenant: Tenant, actor: AbstractBaseUser, email: str, role: str) -> Membership:
    """Add an existing user (found by email, case-insensitively) to the tenant with `role`."""
    locked = _locked_tenant(tenant)
    user = get_user_model().objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        raise TenantRuleError(USER_NOT_FOUND, f"No active user with the email {email!r}.", field="email")
    if Membership.objects.filter(tenant=locked, user=user).exists():
        raise TenantRuleError(ALREADY_MEMBER, f"{email} is already a member.", field="email")
    membership = Membership.objects.create(tenant=locked, user=user, role=role)
    audit_record(
        tenant=locked,
        actor=actor,
        action="membership.create",
        target=membership,
        after=_membership_snapshot(membership),
    )
    return membership


@transaction.atomic
def membership_set_role(*, membership: Membership, actor: AbstractBaseUser, role: str) -> Membership:
    locked_tenant = _locked_tenant(membership.tenant)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER and not _other_owner_exists(tenant=locked_tenant, membership=membership):
        raise TenantRuleError(
            LAST_OWNER, "The last owner cannot be demoted: make another member an owner first.", field="role"
        )
    before = _membership_snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        tenant=locked_tenant,
        actor=actor,
        action="membership.update",
        target=membership,
        before=before,
        after=_membership_snapshot(membership),
    )
    access_changed_on_commit(user_id=membership.user_id, reason="role_changed")
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor: AbstractBaseUser) -> None:
    locked_tenant = _locked_tenant(membership.tenant)
    membership = Membership.objects.select_related("user").get(pk=membership.pk)
    if membership.role == Role.OWNER and not _other_owner_exists(tenant=locked_tenant, membership=membership):
        raise TenantRuleError(
            LAST_OWNER, "The last owner cannot be removed: make another member an owner first."
        )
    before = _membership_snapshot(membership)
    target_id = str(membership.pk)
    # The member's tokens for this tenant die with the membership: they must not outlive access.
    ApiToken.objects.filter(tenant=locked_tenant, user=membership.user, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    membership.delete()
    audit_record(
        tenant=locked_tenant,
        actor=actor,
        action="membership.delete",
        target_type=Membership._meta.label_lower,
        target_id=target_id,
        before=before,
    )
    access_changed_on_commit(user_id=membership.user_id, reason="membership_removed")
