"""Brokers: where orders go. `PaperBroker` simulates fills; live adapters implement `Broker` (see `live.py`)."""

from stratbox.trading.brokers.base import Broker, BrokerUnavailable, FillSpec, broker_for_account
from stratbox.trading.brokers.live import LiveBroker
from stratbox.trading.brokers.paper import PaperBroker, paper_broker_params

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "FillSpec",
    "LiveBroker",
    "PaperBroker",
    "broker_for_account",
    "paper_broker_params",
]
