"""Accounts: creating one (paper or live, credentials encrypted at rest) and rotating the key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from stratbox.trading.credentials import (
    CredentialsUnavailable,
    credentials_encrypt,
    credentials_hint,
    credentials_rotate,
    credentials_validate,
)
from stratbox.trading.models import Account, AccountKind
from stratbox.trading.venue_accounts import venue_credentials_check
from tenants.errors import ApplicationError
from tenants.models import Tenant
from tenants.services import audit_record

ACCOUNT_NAME_TAKEN = "An account with this name already exists."


def account_create(
    *,
    tenant: Tenant,
    actor: Any,
    name: str,
    starting_balance: Decimal,
    kind: str = AccountKind.PAPER,
    broker: str = "",
    credentials: dict[str, str] | None = None,
    check: bool = True,
    **options: Any,
) -> Account:
    """Create an account whose cash starts at `starting_balance`.

    `paper` (default): the simulated broker. `live`: an exchange/broker adapter named by `broker`,
    with optional `credentials` that are encrypted before they touch the database (refused, naming
    `credentials`, when they are malformed or no key is configured) and checked with one read-only
    venue call (outside any transaction: nothing is held open while the venue answers; `check=False`
    only for the local demo's simulated venue, which starts after the demo is installed). A taken
    name is refused naming `name`. A live account trades only for instances with a current staff
    approval (governance); the audit log never sees the credentials.
    """
    if kind not in AccountKind.values:
        raise ValueError(f"unknown account kind {kind!r}")
    if kind == AccountKind.PAPER and (credentials or broker):
        raise ValueError("paper accounts take no broker or credentials")
    ciphertext = hint = ""
    if credentials:
        try:
            clean = credentials_validate(credentials)
            ciphertext, hint = credentials_encrypt(clean), credentials_hint(clean)
        except (CredentialsUnavailable, ValueError) as exc:  # no key: never store them in plaintext
            raise ApplicationError("invalid", str(exc), field="credentials") from exc
        if broker and check:  # only once they could be stored: no venue call for a refusal made here
            venue_credentials_check(broker=broker, credentials=clean)
    return _account_create(
        tenant=tenant,
        actor=actor,
        name=name,
        starting_balance=starting_balance,
        kind=kind,
        broker=broker,
        ciphertext=ciphertext,
        hint=hint,
        **options,
    )


@transaction.atomic
def _account_create(
    *,
    tenant: Tenant,
    actor: Any,
    name: str,
    starting_balance: Decimal,
    kind: str,
    broker: str,
    ciphertext: str,
    hint: str,
    currency: str = "USD",
    slippage_bps: Decimal | None = None,
    fee_bps: Decimal | None = None,
    max_volume_fraction: Decimal | None = None,
) -> Account:
    if Account.objects.filter(tenant=tenant, name=name).exists():
        raise ApplicationError("invalid", ACCOUNT_NAME_TAKEN, field="name")
    try:
        with transaction.atomic():
            account = Account.objects.create(
                tenant=tenant,
                name=name,
                kind=kind,
                currency=currency,
                starting_balance=starting_balance,
                balance=starting_balance,
                slippage_bps=slippage_bps,
                fee_bps=fee_bps,
                max_volume_fraction=max_volume_fraction,
                broker=broker,
                credentials_ciphertext=ciphertext,
                credentials_hint=hint,
                credentials_updated_at=timezone.now() if ciphertext else None,
            )
    except IntegrityError as exc:  # a concurrent create with the same name
        raise ApplicationError("invalid", ACCOUNT_NAME_TAKEN, field="name") from exc
    audit_record(
        tenant=tenant,
        actor=actor,
        action="account.create",
        target=account,
        after={
            "name": name,
            "kind": kind,
            "starting_balance": str(starting_balance),
            "currency": currency,
            **({"max_volume_fraction": str(max_volume_fraction)} if max_volume_fraction is not None else {}),
            **({"broker": broker, "has_credentials": bool(ciphertext)} if kind == AccountKind.LIVE else {}),
        },
    )
    return account


def account_credentials_rotate() -> int:
    """Re-encrypt every stored credential under the newest key (key rotation); returns the count."""
    rotated = 0
    for account in Account.objects.exclude(credentials_ciphertext="").only("pk", "credentials_ciphertext"):
        new = credentials_rotate(account.credentials_ciphertext)
        if new != account.credentials_ciphertext:
            Account.objects.filter(pk=account.pk).update(credentials_ciphertext=new)
            rotated += 1
    return rotated
