"""What a tick sees: its input built from the market's quote, and the snapshot sent with it
(the trusted trading part, the SDK's position view, the mode, the read-only plugin signals)."""

from __future__ import annotations

import time
from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import quote_get
from stratbox.plugins.services import plugin_snapshot
from stratbox.trading.services import instance_snapshot


def tick_from_quote(quote: dict[str, Any], market_code: str) -> dict[str, Any]:
    # A replayed bar's tick carries the bar's time, as a backtest's does; a live quote its own.
    tick = {
        "market": quote.get("market") or market_code,
        "ts": float(quote.get("bar_ts") or quote.get("ts") or time.time()),
        "price": float(quote["price"]),
        "bid": float(quote["bid"]),
        "ask": float(quote["ask"]),
        "volume": float(quote.get("volume") or 0.0),
    }
    for name in ("open", "high", "low", "close"):
        if name in quote:
            tick[name] = float(quote[name])
    return tick


def quote_now(instance: StrategyInstance) -> dict[str, Any] | None:
    return quote_get(instance.market_id)


def tick_snapshot(
    instance: StrategyInstance,
    quote: dict[str, Any],
    mode: str,
    prefix: str,
    trusted: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot sent with a tick; `trusted` is the batch's prefetched trading part, if any."""
    if trusted is None:
        trusted = instance_snapshot(instance=instance, quote=quote)
    price = quote.get("price")
    # The SDK's Position view (signal style): id, market, side, unsigned qty, entry and current price.
    trusted["positions"] = [
        _sdk_position(p, instance.market.code, price) for p in trusted.get("positions") or []
    ]
    if trusted.get("position"):
        trusted["position"] = _sdk_position(trusted["position"], instance.market.code, price)
    return {
        **trusted,
        "mode": mode,
        "now": float(quote.get("bar_ts") or time.time()),
        "quote": {k: quote.get(k) for k in ("market", "price", "bid", "ask", "ts")},
        "order_id_prefix": prefix,
        **plugin_snapshot(instance.pk, time.time()),  # read-only sidecar signals (stratbox.plugins)
    }


def _sdk_position(p: dict[str, Any], market_code: str, price: Any) -> dict[str, Any]:
    qty = float(p.get("qty") or 0)
    return {
        **p,
        "position_id": str(p.get("id")),
        "market": market_code,
        "side": "short" if qty < 0 else "long",
        "qty": abs(qty),
        "signed_qty": qty,
        "entry_price": p.get("avg_price"),
        "current_price": price,
    }
