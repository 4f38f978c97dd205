"""The live broker: a live account's venue adapter (`stratbox.venues`) behind the `Broker` protocol.

It runs in the trusted worker, after the risk gate has passed — which on a live account requires a
current staff approval — and is the only place an order's account credentials are decrypted
(`venue_accounts.adapter_for_account`, on first use of `adapter`: the gate only prices orders). Credentials never leave the worker: not to the API, not to
a sandbox host, not to a log line (errors name the account, never its keys).

The venue, not this process, fills a live order: `submit` and `fill_resting` return no fills.
Sending, recording the venue's answers and resolving doubt are `services.live`'s job (the order is
journaled first, sent outside the transaction, and an unclear outcome resolved by asking). This
class only prices orders for the gate and hands out the adapter.
"""

from __future__ import annotations

import hashlib
import json
import threading
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stratbox.trading.brokers.base import BrokerUnavailable, FillSpec, q8

if TYPE_CHECKING:
    from stratbox.trading.models import Account, Order
    from stratbox.venues.base import VenueAdapter

_BPS = Decimal("10000")
# One adapter per account, credentials and configuration in this process: ccxt keeps the markets it
# loaded, and a venue's client keeps its connection pool. Keyed by a digest, never the secrets.
_ADAPTERS: dict[tuple[str, str], VenueAdapter] = {}
_ADAPTERS_LOCK = threading.Lock()
_ADAPTERS_MAX = 256


def _adapter_for(account: Account) -> VenueAdapter:
    from stratbox.trading.credentials import CredentialsUnavailable
    from stratbox.trading.venue_accounts import adapter_for_account
    from stratbox.venues.base import VenueError
    from stratbox.venues.registry import venue_config

    try:
        config = venue_config(account.broker)
    except VenueError as exc:
        raise BrokerUnavailable(f"account {account.pk}: {exc.message}") from exc
    digest = hashlib.sha256(
        (account.credentials_ciphertext + json.dumps(config, sort_keys=True, default=str)).encode()
    ).hexdigest()
    key = (str(account.pk), digest)
    with _ADAPTERS_LOCK:
        cached = _ADAPTERS.get(key)
    if cached is not None:
        return cached
    try:
        adapter = adapter_for_account(account)
    except CredentialsUnavailable as exc:
        raise BrokerUnavailable(f"account {account.pk}: {exc}") from exc
    except VenueError as exc:
        raise BrokerUnavailable(f"account {account.pk}: {exc.message}") from exc
    with _ADAPTERS_LOCK:
        if len(_ADAPTERS) >= _ADAPTERS_MAX:
            _ADAPTERS.clear()
        _ADAPTERS[key] = adapter
    return adapter


class LiveBroker:
    """A live account's broker: prices for the gate, the venue adapter for `services.live`."""

    def __init__(self, account: Account, fee_bps: Decimal = Decimal(0)) -> None:
        self.account = account
        self._fee_rate = fee_bps / _BPS

    @property
    def adapter(self) -> VenueAdapter:
        """The venue adapter, built (credentials decrypted) on first use: only the code that talks
        to the venue asks for it, never the risk gate."""
        return _adapter_for(self.account)

    @classmethod
    def for_account(cls, account: Account) -> LiveBroker:
        """BrokerUnavailable (the gate's BROKER_UNAVAILABLE) when the account cannot reach its venue:
        no broker, no credentials, an unknown broker name. Credentials the keys cannot decrypt are
        found when the order is sent (`adapter`), and the journaled order is rejected with the same
        code."""
        if not account.broker:
            raise BrokerUnavailable(f"live account {account.pk} names no broker: nothing is sent")
        if not account.credentials_ciphertext:
            raise BrokerUnavailable(f"live account {account.pk} has no credentials: nothing is sent")
        from stratbox.venues.base import VenueError
        from stratbox.venues.registry import venue_config

        try:
            config = venue_config(account.broker)
        except VenueError as exc:
            raise BrokerUnavailable(f"account {account.pk}: {exc.message}") from exc
        # An expected fee for the gate's cash check (the venue charges its own; 0 when not configured).
        return cls(account, Decimal(str(config.get("fee_bps", 0))))

    def estimate_price(
        self,
        *,
        side: str,
        type: str,
        limit_price: Decimal | None,
        quote: dict[str, Any],
        stop_price: Decimal | None = None,
    ) -> Decimal:
        """The limit for a limit order, else the quote's side (the venue fills at its own touch)."""
        side_price = Decimal(str(quote["ask"] if side == "buy" else quote["bid"]))
        if type in ("limit", "stop_limit") and limit_price is not None:
            return limit_price
        if type == "stop" and stop_price is not None:
            return max(side_price, stop_price) if side == "buy" else min(side_price, stop_price)
        return q8(side_price)

    def fee_for(self, notional: Decimal) -> Decimal:
        return q8(notional * self._fee_rate)

    def submit(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        """The venue fills a live order: nothing is known now (`services.live.order_send` sends it)."""
        return []

    def fill_resting(self, order: Order, quote: dict[str, Any]) -> list[FillSpec]:
        """A resting live order is the venue's: our quotes never fill it."""
        return []

    def cancel(self, order: Order) -> None:
        """Cancelling goes to the venue outside any transaction (`services.live.order_cancel_live`)."""
        raise BrokerUnavailable("a live order is cancelled at its venue by services.live, not here")
