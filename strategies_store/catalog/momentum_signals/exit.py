"""Momentum exit: take profit or stop out relative to the entry price."""

from sandbox.sdk import ExitSignal


def should_exit(ctx, position):
    if not position.entry_price or position.current_price is None:
        return None
    change = position.current_price / position.entry_price - 1
    if position.side == "short":
        change = -change
    if change >= ctx.config["take_profit"]:
        ctx.state["exits"] = ctx.state.get("exits", 0) + 1
        return ExitSignal(position.position_id, f"take profit {change:+.2%}")
    if change <= -ctx.config["stop_loss"]:
        ctx.state["exits"] = ctx.state.get("exits", 0) + 1
        return ExitSignal(position.position_id, f"stop loss {change:+.2%}")
    return None
