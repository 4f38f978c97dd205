"""SMA crossover momentum: buy when the fast SMA crosses above the slow SMA, sell on the cross down."""

from sandbox.sdk import Strategy


class SmaCrossover(Strategy):
    CONFIG_SCHEMA = {
        "fast": {"type": "int", "default": 10, "min": 2, "max": 200, "description": "Fast SMA window (bars)"},
        "slow": {"type": "int", "default": 20, "min": 3, "max": 500, "description": "Slow SMA window (bars)"},
        "qty": {"type": "float", "default": 1.0, "min": 0.0001, "max": 1000000, "description": "Order size", "live": True},
        "allow_short": {"type": "bool", "default": False, "description": "Go short on a cross down"},
    }

    def init(self):
        return {"prices": [], "fast_sum": 0.0, "slow_sum": 0.0, "last_diff": None,
                "position": 0, "crosses": 0, "chart": []}

    def on_tick(self, tick):
        st = self.state
        fast_n = self.config["fast"]
        slow_n = self.config["slow"]
        prices = st["prices"]
        price = tick.price
        prices.append(price)
        st["fast_sum"] += price
        st["slow_sum"] += price
        if len(prices) > slow_n:
            st["slow_sum"] -= prices.pop(0)
        n = len(prices)
        if n > fast_n:
            st["fast_sum"] -= prices[n - 1 - fast_n]
        if n < slow_n:
            return
        fast = st["fast_sum"] / fast_n
        slow = st["slow_sum"] / slow_n
        chart = st["chart"]
        chart.append([tick.ts, round(price, 6), round(fast, 6), round(slow, 6)])
        if len(chart) > 120:
            del chart[0]
        diff = fast - slow
        prev = st["last_diff"]
        st["last_diff"] = diff
        if prev is None:
            return
        qty = self.config["qty"]
        if prev <= 0 < diff and st["position"] <= 0:
            size = qty * 2 if st["position"] < 0 else qty
            self.context.place_order("buy", size, tag="sma-cross-up")
            st["position"] = 1
            st["crosses"] += 1
        elif prev >= 0 > diff and st["position"] >= 0:
            if st["position"] > 0:
                size = qty * 2 if self.config["allow_short"] else qty
                self.context.place_order("sell", size, tag="sma-cross-down")
                st["position"] = -1 if self.config["allow_short"] else 0
                st["crosses"] += 1
            elif self.config["allow_short"]:
                self.context.place_order("sell", qty, tag="sma-cross-down")
                st["position"] = -1
                st["crosses"] += 1

    def render(self):
        st = self.state
        chart = st["chart"]
        fast = st["fast_sum"] / self.config["fast"] if chart else None
        slow = st["slow_sum"] / self.config["slow"] if chart else None
        side = {1: "long", 0: "flat", -1: "short"}[st["position"]]
        return {"widgets": [
            {"type": "line_chart", "title": "Price and moving averages", "series": [
                {"name": "price", "points": [[p[0], p[1]] for p in chart]},
                {"name": f"SMA {self.config['fast']}", "points": [[p[0], p[2]] for p in chart]},
                {"name": f"SMA {self.config['slow']}", "points": [[p[0], p[3]] for p in chart]},
            ]},
            {"type": "metric", "label": "Fast SMA", "value": round(fast, 4) if fast is not None else None},
            {"type": "metric", "label": "Slow SMA", "value": round(slow, 4) if slow is not None else None},
            {"type": "metric", "label": "Position", "value": side},
            {"type": "metric", "label": "Crosses traded", "value": st["crosses"]},
        ]}
