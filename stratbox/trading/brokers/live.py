"""Live broker adapters: the interface a real exchange adapter implements, and the v1 stub.

A live adapter implements the `Broker` protocol (the paper broker is the reference
implementation). It runs in the trusted worker, after the risk gate has passed — which on a live
account requires a current staff approval — and is the only code that decrypts the account's
credentials (`stratbox.trading.credentials.credentials_decrypt`). Credentials never leave the
worker: not to the API, not to a sandbox host.

No exchange adapter (e.g. ccxt) ships in this build: `LiveBroker.for_account` refuses with
`BrokerUnavailable`, which the gate reports as BROKER_UNAVAILABLE — an approved live instance
still sends nothing anywhere until an adapter is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratbox.trading.brokers.base import BrokerUnavailable

if TYPE_CHECKING:
    from stratbox.trading.brokers.base import Broker
    from stratbox.trading.models import Account


class LiveBroker:
    """Factory for live adapters; v1 has none, so every live account is refused clearly."""

    @classmethod
    def for_account(cls, account: Account) -> Broker:
        name = getattr(account, "broker", "") or "unset"
        raise BrokerUnavailable(
            f"no live exchange adapter is installed for broker '{name}' (account {account.pk}): "
            "live orders are refused and nothing is sent"
        )
