"""Signal style (seed 002): the trusted code that turns a cycle's exit and entry signals into
sized orders within the instance's capital allocation (sizing method, max positions, lot size)."""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from sandbox import fillmodel as fm
from stratbox.instances.models import StrategyInstance
from stratbox.trading.brokers import BrokerUnavailable, PaperBroker, broker_for_account


def entry_notional(instance: StrategyInstance, confidence: float, config: dict[str, Any]) -> Decimal:
    """Capital for one entry by the instance's sizing method, never above capital_per_trade.

    fixed: capital_per_trade. kelly: the Kelly fraction of an even-odds bet won with probability
    `confidence`, f = 2p - 1 (0 when p <= 0.5), of total capital. percent_capital: the config's
    `percent_capital` (default 10) percent of total capital.
    """
    p = min(max(float(confidence), 0.0), 1.0) if math.isfinite(float(confidence)) else 0.0
    raw = config.get("percent_capital", 10)
    pct = Decimal(str(raw)) if type(raw) in (int, float) and math.isfinite(raw) and raw > 0 else Decimal(10)
    # The one sizing rule (the backtester sizes with it too, in floats).
    notional = fm.entry_notional(
        instance.sizing_method,
        Decimal(instance.capital_per_trade),
        Decimal(instance.total_capital),
        Decimal(str(p)),
        pct,
    )
    return notional.quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def entry_price(instance: StrategyInstance, side: str, quote: dict[str, Any]) -> Decimal:
    """The price an entry is sized at: the risk gate's own estimate for a market order of that side
    (`Broker.estimate_price`, `fillmodel.price_estimate`: the quote's side with slippage), so an
    entry sized to exactly capital_per_trade is not denied for exceeding it. A live account with no
    adapter: the paper broker of its columns, which is what the shadow gate values its observed
    orders with (its active orders are refused anyway)."""
    try:
        broker = broker_for_account(instance.account)
    except BrokerUnavailable:
        broker = PaperBroker.for_account(instance.account)
    return broker.estimate_price(side=side, type="market", limit_price=None, quote=quote)


def entry_qty(instance: StrategyInstance, notional: Decimal, side: str, quote: dict[str, Any]) -> Decimal:
    """An entry's quantity: `notional` at `entry_price`, floored to the market's lot
    (`fillmodel.entry_qty`, which the backtester sizes with too)."""
    qty: Decimal = fm.entry_qty(
        notional, entry_price(instance, side, quote), Decimal(instance.market.lot_size)
    )
    return qty


def signal_intents(
    instance: StrategyInstance, result: dict[str, Any], snapshot: dict[str, Any], quote: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Exits first (close the named open positions), then sized entries within max_positions.

    Returns (intents, skipped-actions). Everything here is trusted code over untrusted signals.
    """
    prefix = snapshot["order_id_prefix"]
    intents: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    positions = {str(p.get("position_id")): p for p in snapshot.get("positions") or [] if isinstance(p, dict)}
    n = 0
    closed: set[str] = set()
    for sig in result.get("exits") or []:
        pid = str(sig.get("position_id")) if isinstance(sig, dict) else ""
        pos = positions.get(pid)
        if pos is None or pid in closed:
            skipped.append(
                {"kind": "skipped", "signal": "exit", "position_id": pid, "deny_code": "UNKNOWN_POSITION"}
            )
            continue
        qty = float(pos.get("signed_qty") or 0)
        if qty == 0:
            continue
        closed.add(pid)
        n += 1
        intents.append(
            {
                "kind": "order",
                "client_order_id": f"{prefix}-{n}",
                "side": "sell" if qty > 0 else "buy",
                "qty": abs(qty),
                "type": "market",
                "price": None,
                "tag": ("exit:" + str(sig.get("reason") or ""))[:64],
            }
        )
    open_after = len([p for p in positions if p not in closed])
    slots = max(int(instance.max_positions) - open_after, 0)
    for sig in result.get("entries") or []:
        if not isinstance(sig, dict):
            continue
        side = "sell" if sig.get("side") == "short" else "buy"
        reason = str(sig.get("reason") or "")[:200]
        if slots <= 0:
            skipped.append(
                {
                    "kind": "skipped",
                    "signal": "entry",
                    "side": side,
                    "tag": ("entry:" + reason)[:64],
                    "deny_code": "MAX_POSITIONS_REACHED",
                    "message": f"entry signal not taken: {int(instance.max_positions)} open position(s) is the"
                    f" instance's max_positions ({reason or 'no reason given'})",
                }
            )
            continue
        confidence = sig.get("confidence", 1.0)
        if type(confidence) not in (int, float):
            confidence = 0.0
        try:
            qty = entry_qty(
                instance, entry_notional(instance, confidence, instance.config or {}), side, quote
            )
        except (InvalidOperation, ZeroDivisionError):
            qty = Decimal(0)
        if qty <= 0:
            skipped.append(
                {
                    "kind": "skipped",
                    "signal": "entry",
                    "side": side,
                    "tag": ("entry:" + reason)[:64],
                    "deny_code": "SIZE_ZERO",
                    "confidence": confidence,
                    "message": "the sized quantity is below the market's lot size",
                }
            )
            continue
        slots -= 1
        n += 1
        intents.append(
            {
                "kind": "order",
                "client_order_id": f"{prefix}-{n}",
                "side": side,
                "qty": float(qty),
                "type": "market",
                "price": None,
                "tag": ("entry:" + reason)[:64],
                # the bracket model for signal strategies: legs attached once the entry fills
                **{leg: sig[leg] for leg in ("sl", "tp") if sig.get(leg) is not None},
            }
        )
    return intents, skipped
