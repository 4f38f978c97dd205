"""Live accounts meet their venues: credentials checked when added, adapters built where they are used.

`venue_credentials_check` makes one read-only, authenticated call (the account or balance
endpoint) with the credentials a user is adding, before anything is stored; a refusal names
`credentials` and carries the venue's own message. `adapter_for_account` decrypts an account's
credentials and builds its adapter: call it only in the trusted process that talks to the venue,
never hand the result (or the credentials) to a sandbox host, an API body or a log line.
"""

from __future__ import annotations

from django.conf import settings

from stratbox.trading.credentials import credentials_decrypt
from stratbox.trading.models import Account
from stratbox.venues.base import VenueAdapter, VenueError
from stratbox.venues.registry import adapter_build
from tenants.errors import ApplicationError

CHECK_TIMEOUT_SECONDS = 10.0


def venue_credentials_check(*, broker: str, credentials: dict[str, str]) -> None:
    if not getattr(settings, "STRATBOX_VENUE_CREDENTIALS_CHECK", True):
        return
    try:
        adapter_build(broker, credentials, timeout=CHECK_TIMEOUT_SECONDS).check()
    except VenueError as exc:
        raise ApplicationError(
            "invalid", f"The venue refused these credentials ({exc.code}): {exc.message}", field="credentials"
        ) from exc


def adapter_for_account(account: Account) -> VenueAdapter:
    return adapter_build(account.broker, credentials_decrypt(account.credentials_ciphertext))
