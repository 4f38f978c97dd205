"""The recent-quote history behind the dashboard's candles: capped, oldest first, per market."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def _quote(market: Any, ts: float, price: float) -> dict[str, Any]:
    return {"market": market.code, "price": price, "bid": price, "ask": price, "volume": 1.0, "ts": ts}


def test_quotes_are_remembered_oldest_first_and_capped(market: Any, monkeypatch: Any) -> None:
    from stratbox.markets import quotes

    quotes.redis_client().delete(f"quote-history:{market.pk}")
    monkeypatch.setattr(quotes, "HISTORY_LENGTH", 5)
    for i in range(8):
        quotes.quotes_set_many({market.pk: _quote(market, 1000.0 + i, 100.0 + i)})
    assert quotes.quote_history(market.pk) == [(1003.0 + i, 103.0 + i) for i in range(5)]
    quotes.quote_set(market.pk, _quote(market, 2000.0, 60200.5))
    assert quotes.quote_history(market.pk)[-1] == (2000.0, 60200.5)
    assert len(quotes.quote_history(market.pk)) == 5
