"""Reads the web UI needs that no lower app offers (yet), each scoped to the tenant it serves.

Delegates to the owning app's selector when it exists; the local queries are the fallback until
`stratbox.trading.selectors.account_list` and `stratbox.markets.selectors.market_list` land.
"""

from __future__ import annotations

from typing import Any

from tenants.models import Tenant


def accounts_for_tenant(*, tenant: Tenant) -> list[Any]:
    try:
        from stratbox.trading.selectors import account_list
    except ImportError:
        from stratbox.trading.models import Account

        return list(Account.objects.filter(tenant=tenant).order_by("kind", "name"))
    return list(account_list(tenant=tenant))


def markets_active() -> list[Any]:
    try:
        from stratbox.markets.selectors import market_list
    except ImportError:
        from stratbox.markets.models import Market

        return list(Market.objects.filter(active=True).order_by("venue", "symbol"))
    return list(market_list())
