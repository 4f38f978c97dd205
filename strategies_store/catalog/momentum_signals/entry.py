"""Momentum entry: go long when the return over the lookback beats the threshold."""

from sandbox.sdk import EntrySignal

# The config schema (lookback, threshold, take_profit, stop_loss) is config.json's `config_schema`.


def should_enter(ctx):
    history = ctx.history
    lookback = ctx.config["lookback"]
    if len(history) <= lookback:
        return []
    past = history[-lookback - 1]
    now = history[-1]
    momentum = now / past - 1 if past else 0.0
    ctx.state["momentum"] = round(momentum, 6)
    ctx.state["evaluations"] = ctx.state.get("evaluations", 0) + 1
    if momentum < ctx.config["threshold"]:
        return []
    confidence = min(1.0, momentum / (ctx.config["threshold"] * 4 or 1))
    ctx.state["entries"] = ctx.state.get("entries", 0) + 1
    return [EntrySignal(ctx.market, "long", f"{lookback}-bar momentum {momentum:+.2%}", round(confidence, 3))]


def render(state):
    return {"widgets": [
        {"type": "metric", "label": "Momentum", "value": state.get("momentum"), "unit": "return"},
        {"type": "metric", "label": "Entry signals", "value": state.get("entries", 0)},
        {"type": "metric", "label": "Exits", "value": state.get("exits", 0)},
    ]}
