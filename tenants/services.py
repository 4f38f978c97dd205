"""Writes for tenants: signup, tokens, audit. Each service owns its transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from tenants.models import ApiToken, AuditEvent, Membership, Role, Tenant

TOKEN_PREFIX = "sbx"  # noqa: S105 - a visible marker, not a secret


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
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=actor_obj,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
    )


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
def token_create(*, tenant: Tenant, user: AbstractBaseUser, name: str) -> IssuedToken:
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        tenant=tenant, user=user, name=name, prefix=prefix, digest=token_digest(plaintext)
    )
    audit_record(
        tenant=tenant, actor=user, action="token.create", target=token, after={"name": name, "prefix": prefix}
    )
    return IssuedToken(token=token, plaintext=plaintext)


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
    return token
