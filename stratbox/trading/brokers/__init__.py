"""Brokers: where orders go. `PaperBroker` simulates fills; live adapters implement `Broker` (see `live.py`).

The factory `broker_for_account` lives here, above `base` (the protocol and shared types),
`paper` and `live`, so those modules only import `base` and none imports another back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratbox.trading.brokers.base import Broker, BrokerUnavailable, FillSpec
from stratbox.trading.brokers.live import LiveBroker
from stratbox.trading.brokers.paper import PaperBroker, paper_broker_params

if TYPE_CHECKING:
    from stratbox.trading.models import Account

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "FillSpec",
    "LiveBroker",
    "PaperBroker",
    "broker_for_account",
    "paper_broker_params",
]


def broker_for_account(account: Account) -> Broker:
    """The broker an account's orders go to: the paper simulator or its live adapter."""
    if account.kind == "paper":
        return PaperBroker.for_account(account)
    if account.kind == "live":
        return LiveBroker.for_account(account)
    raise BrokerUnavailable(f"unknown account kind {account.kind!r} for account {account.pk}")
