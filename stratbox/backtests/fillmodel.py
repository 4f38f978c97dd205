"""The paper broker's fill-model parameters, as handed to the sandbox host for a backtest.

One source of truth with ``stratbox.trading``: ``paper_broker_params`` gives the paper broker's
slippage/fee (global defaults, or an instance's paper account's own values) — so a backtest "reusing an instance" fills exactly like that
instance's paper trading does.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from stratbox.instances.models import StrategyInstance
from stratbox.trading.brokers import paper_broker_params


def broker_params_for(
    *,
    capital: Decimal,
    slippage_bps: float | None = None,
    fee_bps: float | None = None,
    instance: StrategyInstance | None = None,
    fill_timing: str | None = None,
    max_volume_fraction: float | None = None,
) -> dict[str, Any]:
    """The JSON-safe broker parameters stored with a backtest (provenance) and sent to the host.

    Explicit ``slippage_bps``/``fee_bps`` (a what-if run) override the paper broker's values.
    """
    params: dict[str, Any] = {"starting_balance": float(capital)}
    params.update(paper_broker_params(instance.account if instance is not None else None))
    if slippage_bps is not None:
        params["slippage_bps"] = float(slippage_bps)
    if fee_bps is not None:
        params["fee_bps"] = float(fee_bps)
    if fill_timing is not None:
        params["fill_timing"] = fill_timing
    if max_volume_fraction is not None:
        params["max_volume_fraction"] = float(max_volume_fraction)
    if instance is not None:
        # Signal-style strategies are sized as the engine sizes them (`fillmodel.entry_notional`).
        pct = (instance.config or {}).get("percent_capital", 10)
        params["sizing"] = {
            "method": instance.sizing_method,
            "capital_per_trade": float(instance.capital_per_trade),
            "total_capital": float(instance.total_capital),
            "percent_capital": pct if type(pct) in (int, float) else 10,
            "lot_size": float(instance.market.lot_size),
            "max_positions": instance.max_positions,
            "max_position_size": float(instance.max_position_size),
        }
        # The paper gate's capital rules: a backtest never shows a trade paper trading would deny.
        params["limits"] = {
            "max_daily_loss": float(instance.max_daily_loss),
            "capital_per_trade": float(instance.capital_per_trade),
            "max_positions": instance.max_positions,
            "max_position_size": float(instance.max_position_size),
            "total_capital": float(instance.total_capital),
        }
        market = instance.market
        params["kind"] = market.kind
        params["tick_size"] = float(market.tick_size)
    return params
