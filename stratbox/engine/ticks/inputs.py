"""What a tick sees: its input built from the market's quote, and the snapshot sent with it
(the trusted trading part, the SDK's position view, the mode, the read-only plugin signals)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from sandbox.barhistory import MAX_HISTORY_BARS, uses_history
from stratbox.engine.sandboxes import version_sources
from stratbox.instances.models import StrategyInstance
from stratbox.markets.quotes import market_bars_recent, quote_get
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


# version id -> whether its code may call `history` (versions are immutable: never stale).
_USES_HISTORY: OrderedDict[Any, bool] = OrderedDict()
_USES_HISTORY_CACHED = 4096


def wants_history(instance: StrategyInstance) -> bool:
    """Whether the instance's version may read ``context.history`` (decided once per version from
    its source, see `sandbox.barhistory.uses_history`): only those ticks fetch recent bars."""
    key = instance.version_id
    known = _USES_HISTORY.get(key)
    if known is None:
        source, exit_source = version_sources(instance.version)
        known = uses_history({"strategy.py": source, "exit.py": exit_source})
        _USES_HISTORY[key] = known
        while len(_USES_HISTORY) > _USES_HISTORY_CACHED:
            _USES_HISTORY.popitem(last=False)
    return known


def histories_for(instances: list[StrategyInstance]) -> dict[int, dict[str, list[float]]]:
    """Recent bars of the markets of those instances that read history (one Redis round trip)."""
    return market_bars_recent({i.market_id for i in instances if wants_history(i)}, MAX_HISTORY_BARS)


def tick_snapshot(
    instance: StrategyInstance,
    quote: dict[str, Any],
    mode: str,
    prefix: str,
    trusted: dict[str, Any] | None = None,
    histories: dict[int, dict[str, list[float]]] | None = None,
) -> dict[str, Any]:
    """The snapshot sent with a tick; `trusted` is the batch's prefetched trading part, if any,
    `histories` its prefetched recent bars per market (see `histories_for`)."""
    history: dict[str, list[float]] | None = None
    if wants_history(instance):
        history = (histories or {}).get(instance.market_id)
        if history is None:
            history = market_bars_recent([instance.market_id], MAX_HISTORY_BARS).get(instance.market_id)
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
        **({"history": history} if history is not None else {}),
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
