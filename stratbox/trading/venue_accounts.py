"""Live accounts meet their venues: credentials checked when added, adapters built where they are used.

`venue_credentials_check` makes one read-only, authenticated call (the account or balance
endpoint) with the credentials a user is adding, before anything is stored; a refusal names
`credentials` and carries the venue's own message. `adapter_for_account` decrypts an account's
credentials and builds its adapter: call it only in the trusted process that talks to the venue,
never hand the result (or the credentials) to a sandbox host, an API body or a log line.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings

from stratbox.markets.models import FeedSource, Market
from stratbox.trading.credentials import CredentialsUnavailable, credentials_decrypt
from stratbox.trading.models import Account, AccountKind
from stratbox.venues.base import VenueAdapter, VenueError
from stratbox.venues.catalogue import bars_ensure
from stratbox.venues.registry import adapter_build, brokers_for_venue, venue_config
from tenants.errors import ApplicationError
from tenants.models import Tenant

log = logging.getLogger(__name__)

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


def venue_bars_fetch(
    *, tenant: Tenant, market: Market, interval_seconds: int, start: datetime, end: datetime
) -> int:
    """Before a backtest on a venue market: fetch the bars the store lacks from the venue, once for all.

    Read with the tenant's own live account on that venue when it has one (Alpaca's data needs
    keys), else anonymously where the venue's bars are public (ccxt exchanges). Returns the bars
    stored; a venue that cannot be asked leaves the store as it is (the backtest then says which
    bars are missing).
    """
    if market.feed != FeedSource.VENUE:
        return 0
    brokers = brokers_for_venue(market.venue)
    accounts = (
        Account.objects.filter(tenant=tenant, kind=AccountKind.LIVE, broker__in=brokers)
        .exclude(credentials_ciphertext="")
        .order_by("created_at")
    )
    try:
        account = accounts.first()
        if account is not None:
            adapter = adapter_for_account(account)
        elif (public := next((b for b in brokers if venue_config(b)["adapter"] == "ccxt"), None)) is not None:
            adapter = adapter_build(public, {})
        else:
            return 0
        return bars_ensure(
            adapter=adapter, market=market, interval_seconds=interval_seconds, start=start, end=end
        )
    except (VenueError, CredentialsUnavailable) as exc:
        log.warning("bars of %s from its venue: %s", market.code, exc)
        return 0
