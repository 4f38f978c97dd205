"""Z-score mean reversion: buy when price sits far below its rolling mean, exit as it reverts."""

import math

from sandbox.sdk import Strategy


class MeanReversion(Strategy):
    CONFIG_SCHEMA = {
        "window": {"type": "int", "default": 30, "min": 5, "max": 1000, "description": "Rolling window (bars)"},
        "entry_z": {"type": "float", "default": 2.0, "min": 0.5, "max": 6, "description": "Enter beyond this z-score", "live": True},
        "exit_z": {"type": "float", "default": 0.25, "min": 0, "max": 3, "description": "Exit inside this z-score", "live": True},
        "qty": {"type": "float", "default": 1.0, "min": 0.0001, "max": 1000000, "live": True},
        "allow_short": {"type": "bool", "default": True},
    }

    def init(self):
        return {"prices": [], "sum": 0.0, "sumsq": 0.0, "position": 0, "z": None, "trades": 0, "zs": []}

    def on_tick(self, tick):
        st = self.state
        window = self.config["window"]
        price = tick.price
        prices = st["prices"]
        prices.append(price)
        st["sum"] += price
        st["sumsq"] += price * price
        if len(prices) > window:
            old = prices.pop(0)
            st["sum"] -= old
            st["sumsq"] -= old * old
        if len(prices) < window:
            return
        mean = st["sum"] / window
        var = max(st["sumsq"] / window - mean * mean, 0.0)
        sd = math.sqrt(var)
        if sd <= 1e-12:
            return
        z = (price - mean) / sd
        st["z"] = z
        zs = st["zs"]
        zs.append([tick.ts, round(z, 4)])
        if len(zs) > 120:
            del zs[0]
        qty = self.config["qty"]
        pos = st["position"]
        if pos == 0:
            if z <= -self.config["entry_z"]:
                self.context.place_order("buy", qty, tag="z-entry-long")
                st["position"] = 1
                st["trades"] += 1
            elif z >= self.config["entry_z"] and self.config["allow_short"]:
                self.context.place_order("sell", qty, tag="z-entry-short")
                st["position"] = -1
                st["trades"] += 1
        elif pos > 0 and z >= -self.config["exit_z"]:
            self.context.close_position(tag="z-exit")
            st["position"] = 0
        elif pos < 0 and z <= self.config["exit_z"]:
            self.context.close_position(tag="z-exit")
            st["position"] = 0

    def render(self):
        st = self.state
        z = st["z"]
        return {"widgets": [
            {"type": "line_chart", "title": "Z-score", "series": [{"name": "z", "points": st["zs"]}]},
            {"type": "metric", "label": "Z-score", "value": round(z, 3) if z is not None else None},
            {"type": "metric", "label": "Position", "value": {1: "long", 0: "flat", -1: "short"}[st["position"]]},
            {"type": "metric", "label": "Entries", "value": st["trades"]},
            {"type": "text", "text": f"Enter beyond ±{self.config['entry_z']:.2f}σ, exit inside ±{self.config['exit_z']:.2f}σ."},
        ]}
