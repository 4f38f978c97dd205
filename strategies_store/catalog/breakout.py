"""N-bar breakout: buy when price breaks above the highest high of the last N bars; exit below
the lowest low of the last M bars (a Donchian channel)."""

from sandbox.sdk import Strategy

class Breakout(Strategy):
    CONFIG_SCHEMA = {
        "entry_window": {"type": "int", "default": 20, "min": 2, "max": 500, "description": "Breakout lookback (bars)"},
        "exit_window": {"type": "int", "default": 10, "min": 2, "max": 500, "description": "Exit lookback (bars)"},
        "qty": {"type": "float", "default": 1.0, "min": 0.0001, "max": 1000000, "live": True},
    }

    def init(self):
        return {"highs": [], "lows": [], "position": 0, "entry_price": None, "breakouts": 0, "log": []}

    def on_tick(self, tick):
        st = self.state
        high = tick.high if tick.high is not None else tick.price
        low = tick.low if tick.low is not None else tick.price
        highs = st["highs"]
        lows = st["lows"]
        n_entry = self.config["entry_window"]
        n_exit = self.config["exit_window"]
        keep = max(n_entry, n_exit)
        if len(highs) >= n_entry:
            channel_high = max(highs[-n_entry:])
            channel_low = min(lows[-n_exit:])
            if st["position"] == 0 and tick.price > channel_high:
                receipt = self.context.place_order("buy", self.config["qty"], tag="breakout")
                st["position"] = 1
                st["entry_price"] = tick.price
                st["breakouts"] += 1
                self.note(f"breakout above {channel_high:.2f} ({receipt.status})")
            elif st["position"] > 0 and tick.price < channel_low:
                self.context.close_position(tag="channel-exit")  # whatever is held, even if partly denied
                st["position"] = 0
                self.note(f"exit below {channel_low:.2f}")
                st["entry_price"] = None
        highs.append(high)
        lows.append(low)
        if len(highs) > keep:
            del highs[0]
            del lows[0]

    def note(self, text):
        notes = self.state["log"]
        notes.append(text)
        if len(notes) > 20:
            del notes[0]
        self.context.log(text)

    def render(self):
        st = self.state
        n = self.config["entry_window"]
        hi = max(st["highs"][-n:]) if st["highs"] else None
        lo = min(st["lows"][-self.config["exit_window"]:]) if st["lows"] else None
        return {"widgets": [
            {"type": "metric", "label": "Channel high", "value": hi},
            {"type": "metric", "label": "Channel low", "value": lo},
            {"type": "metric", "label": "Position", "value": "long" if st["position"] else "flat"},
            {"type": "table", "title": "Channel", "columns": ["bar", "high", "low"],
             "rows": [[i, h, l] for i, (h, l) in enumerate(zip(st["highs"], st["lows"]))][-10:]},
            {"type": "log", "lines": list(st["log"])},
        ]}
