"""Member invitations: an owner invites an email address; the user with that email accepts.

`invitation_create` answers the same whether or not an account exists for the address (nothing
is revealed), replaces a pending invitation of the same address, and emails a link holding a
one-time token (only its digest is stored). `invitation_accept` needs the signed-in user's email
to be the invited one; it creates the membership then, with the user's consent.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from tenants.models import Invitation, Membership, Role, Tenant
from tenants.services import TenantRuleError, audit_record

INVITATION_DAYS = 7
INVITATION_INVALID = "INVITATION_INVALID"
ACCEPT_PATH = "/invitations/{token}/"


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # in the emailed link only; never stored, never returned by the API


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitation_create(
    *, tenant: Tenant, actor: AbstractBaseUser, email: str, role: str, base_url: str = ""
) -> IssuedInvitation:
    if role not in Role.values:
        raise TenantRuleError("INVALID_ROLE", f"Unknown role {role!r}.", field="role")
    address = email.strip().lower()
    now = timezone.now()
    Invitation.objects.filter(tenant=tenant, email=address, accepted_at__isnull=True).delete()
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant,
        email=address,
        role=role,
        digest=_digest(token),
        invited_by=actor if getattr(actor, "is_authenticated", False) else None,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="invitation.create",
        target=invitation,
        after={"email": address, "role": role},
    )
    link = f"{base_url}{ACCEPT_PATH.format(token=token)}"
    # Sent here, after the rows are written: were the transaction to roll back, the link would
    # only lead to "not valid".
    send_mail(
        subject=f"You are invited to {tenant.name} on Stratbox",
        message=(
            f"{getattr(actor, 'email', 'Someone')} invited {address} to join {tenant.name} as {role}.\n\n"
            f"Sign in (or sign up) with this email address, then open:\n{link}\n\n"
            f"The link works for {INVITATION_DAYS} days. Ignore this mail if you do not want to join."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[address],
    )
    return IssuedInvitation(invitation=invitation, token=token)


def invitation_get_by_token(*, token: str) -> Invitation | None:
    """A pending, unexpired invitation, or None (unknown, used and expired links look the same)."""
    return (
        Invitation.objects.select_related("tenant")
        .filter(digest=_digest(token), accepted_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )


@transaction.atomic
def invitation_accept(*, token: str, user: AbstractBaseUser) -> Membership:
    invitation = invitation_get_by_token(token=token)
    if invitation is not None:
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    email = (getattr(user, "email", "") or "").strip().lower()
    if invitation is None or invitation.accepted_at is not None or invitation.email != email:
        raise TenantRuleError(
            INVITATION_INVALID,
            "This invitation link is not valid for your account: it was used, it expired, or it was "
            "sent to another email address.",
        )
    membership, created = Membership.objects.get_or_create(
        tenant=invitation.tenant, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    if created:
        audit_record(
            tenant=invitation.tenant,
            actor=user,
            action="membership.create",
            target=membership,
            after={"email": email, "role": membership.role, "invitation": str(invitation.pk)},
        )
    return membership
