"""The venue contract (tests/venues/contract.py) against Alpaca's paper environment.

The same scenarios run against the loopback Alpaca in every `make test`. Here they reach the real
paper API through alpaca-py: a limit far below the market is placed, found by its client order id,
refused as a duplicate, cancelled; the account is left without a fill or a position.
"""

from __future__ import annotations

import os

from stratbox.venues.alpaca import AlpacaAdapter
from tests.venues.contract import run_contract


def _adapter(secret: str) -> AlpacaAdapter:
    config = {
        "environment": "paper",
        "trading_url": os.environ.get("APCA_API_BASE_URL") or None,
        "data_url": os.environ.get("APCA_API_DATA_URL") or None,
    }
    credentials = {"api_key_id": os.environ["APCA_API_KEY_ID"], "api_secret_key": secret}
    return AlpacaAdapter(credentials=credentials, config=config)


def test_alpaca_paper_meets_the_venue_contract() -> None:
    secret = os.environ["APCA_API_SECRET_KEY"]
    symbol = os.environ.get("CONTRACT_SYMBOL", "AAPL")
    passed = run_contract(_adapter(secret), symbol, lambda: _adapter(secret + "x"))
    print("\n".join(f"passed: {name}" for name in passed))
    assert len(passed) == 8
