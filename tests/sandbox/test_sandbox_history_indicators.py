"""``context.history(n, field)`` and the built-in ``sandbox.indicators`` module.

Indicator values are checked against numbers computed by hand (written out in the comments);
history is checked in a live tick (bars from the engine's snapshot), in tick- and signal-style
backtests (bars from the chunk, continued across chunk boundaries) and for its errors.
"""

from __future__ import annotations

import math

import pytest
from sbx_support import TICK, snapshot

from sandbox import SandboxError, validate_source
from sandbox.barhistory import MAX_HISTORY_BARS, uses_history
from sandbox.indicators import ATR, EMA, RSI, SMA, Bollinger, RollingMax, RollingMin

# --------------------------------------------------------------------------- indicators by hand


def test_sma_by_hand() -> None:
    sma = SMA(3)
    # (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
    assert [sma.update(x) for x in (1, 2, 3, 4, 5)] == [None, None, 2.0, 3.0, 4.0]
    assert sma.ready and sma.value == 4.0 and sma.n == 3


def test_ema_by_hand() -> None:
    ema = EMA(3)  # alpha = 2/(3+1) = 0.5; seed = SMA(2, 4, 6) = 4
    # 8: 0.5*8 + 0.5*4 = 6; 12: 0.5*12 + 0.5*6 = 9
    assert [ema.update(x) for x in (2, 4, 6, 8, 12)] == [None, None, 4.0, 6.0, 9.0]


def test_rsi_by_hand() -> None:
    rsi = RSI(3)
    # changes +1, -1, +2 -> avg gain (1+0+2)/3 = 1, avg loss (0+1+0)/3 = 1/3, RS 3 -> RSI 75
    # change 0 -> gain (1*2+0)/3 = 2/3, loss (1/3*2+0)/3 = 2/9, RS 3 -> 75
    # change -3 -> gain (2/3*2)/3 = 4/9, loss (2/9*2+3)/3 = 31/27, RS 12/31 -> 100*12/43
    values = [rsi.update(x) for x in (10, 11, 10, 12, 12, 9)]
    assert values[:3] == [None, None, None]
    assert values[3] == pytest.approx(75.0)
    assert values[4] == pytest.approx(75.0)
    assert values[5] == pytest.approx(1200 / 43)
    flat = RSI(2)
    assert flat.extend([5, 5, 5]) == 50.0  # never moved
    rising = RSI(2)
    assert rising.extend([1, 2, 3]) == 100.0  # no loss at all


def test_atr_by_hand() -> None:
    atr = ATR(2)
    # TR: 10-8 = 2; max(2, |11-9|, |9-9|) = 2 -> ATR (2+2)/2 = 2
    # max(3, |13-10|, |10-10|) = 3 -> (2*1 + 3)/2 = 2.5; max(5, |12-12|, |7-12|) = 5 -> 3.75
    # a gap up: max(1, |20-8|, |19-8|) = 12 -> (3.75 + 12)/2 = 7.875
    bars = [(10, 8, 9), (11, 9, 10), (13, 10, 12), (12, 7, 8), (20, 19, 19.5)]
    assert [atr.update(*b) for b in bars] == [None, 2.0, 2.5, 3.75, 7.875]
    with pytest.raises(ValueError, match="low is above high"):
        atr.update(1, 2, 1.5)
    assert atr.value == 7.875  # a refused bar changes nothing


def test_bollinger_by_hand() -> None:
    bb = Bollinger(4, 2)
    # [1,2,3,4]: mean 2.5, population variance (2.25+0.25+0.25+2.25)/4 = 1.25 -> 2.5 -/+ 2*sqrt(1.25)
    assert bb.extend([1, 2, 3]) is None
    lower, middle, upper = bb.update(4)
    assert middle == 2.5
    assert lower == pytest.approx(2.5 - math.sqrt(5)) and upper == pytest.approx(2.5 + math.sqrt(5))
    # [2,3,4,6]: mean 3.75, squared deviations 3.0625+0.5625+0.0625+5.0625 = 8.75 -> var 2.1875
    bb.update(6)
    assert bb.middle == 3.75
    assert bb.upper - bb.middle == pytest.approx(2 * math.sqrt(2.1875))
    assert bb.lower == pytest.approx(3.75 - 2 * math.sqrt(2.1875))


def test_rolling_max_min_by_hand() -> None:
    values = (5, 1, 3, 2, 0, 4)
    assert [RollingMax(3).extend(values[: i + 1]) for i in range(6)] == [None, None, 5.0, 3.0, 3.0, 4.0]
    lo = RollingMin(3)
    assert [lo.update(v) for v in values] == [None, None, 1.0, 1.0, 0.0, 0.0]


def test_indicators_refuse_bad_input_and_keep_their_value() -> None:
    sma = SMA(2)
    sma.extend([1, 3])
    for bad in (float("nan"), float("inf"), "3", True, None):
        with pytest.raises((TypeError, ValueError)):
            sma.update(bad)  # type: ignore[arg-type]
    assert sma.value == 2.0
    for bad_n in (0, -1, 2.0, True, 10**9):
        with pytest.raises(ValueError, match="n must be an int"):
            SMA(bad_n)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        Bollinger(20, -1)


def test_sma_stays_exact_over_a_long_run() -> None:
    sma = SMA(10)
    for i in range(100_000):
        sma.update(1e9 + (i % 7) * 0.1)
    window = [1e9 + (i % 7) * 0.1 for i in range(100_000 - 10, 100_000)]
    assert sma.value == pytest.approx(math.fsum(window) / 10, rel=1e-15)


# --------------------------------------------------------------------------- inside the sandbox

INDICATOR_STRATEGY = """
from sandbox import indicators
from sandbox.indicators import SMA, RSI

class Ind(Strategy):
    def __init__(self):
        self.fast = SMA(2)
        self.rsi = RSI(2)
        self.bands = indicators.Bollinger(2, 1)

    def on_tick(self, tick):
        fast = self.fast.update(tick.price)
        self.rsi.update(tick.price)
        self.bands.update(tick.price)
        self.state["fast"] = fast
        self.state["rsi"] = self.rsi.value
        self.state["upper"] = self.bands.upper
        self.state["ready"] = self.fast.ready
"""


def test_indicators_import_and_run_in_the_sandbox(client) -> None:
    src = "from sandbox.sdk import Strategy\n" + INDICATOR_STRATEGY
    assert validate_source(src).ok
    client.load("t-ind", "ind", source=src, config={})
    state = None
    for price in (10.0, 12.0, 11.0):
        state = client.tick("t-ind", "ind", dict(TICK, price=price), snapshot("observe"))["state"]
    # SMA(2) of 12, 11 = 11.5; RSI(2): +2, -1 -> gain 1, loss 0.5 -> 100 - 100/3
    # Bollinger(2, 1) of 12, 11: mean 11.5, population sd 0.5 -> upper 12.0
    assert state == {"fast": 11.5, "rsi": pytest.approx(100 - 100 / 3), "upper": 12.0, "ready": True}
    client.unload("t-ind", "ind")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import sandbox.indicators\n", "use 'from sandbox import indicators'"),
        ("from sandbox.indicators import deque\n", "import of sandbox.indicators.deque is not allowed"),
        ("from sandbox import client\n", "import of sandbox.client is not allowed"),
    ],
)
def test_only_the_offered_indicator_names_import(source: str, message: str) -> None:
    report = validate_source(source + "from sandbox.sdk import Strategy\nclass S(Strategy):\n    pass\n")
    assert not report.ok
    assert any(message in e.message for e in report.errors)


def test_indicator_objects_are_read_only_to_user_code(client) -> None:
    src = (
        "from sandbox.sdk import Strategy\nfrom sandbox.indicators import SMA\n"
        "class S(Strategy):\n    def on_tick(self, tick):\n        s = SMA(2)\n        s.n = 5\n"
    )
    client.load("t-ind", "ro", source=src, config={})
    with pytest.raises(SandboxError) as err:
        client.tick("t-ind", "ro", TICK, snapshot("observe"))
    assert err.value.code == "FORBIDDEN"
    client.unload("t-ind", "ro")


# --------------------------------------------------------------------------- history: live tick

HISTORY_TICK = """
from sandbox.sdk import Strategy

class H(Strategy):
    def on_tick(self, tick):
        self.state["close3"] = self.context.history(3)
        self.state["high2"] = self.context.history(2, "high")
        self.state["all"] = len(self.context.history(1000, field="ts"))
"""


def _bars_snapshot(n: int) -> dict:
    return snapshot(
        "observe",
        history={
            "ts": [1000.0 + 60 * i for i in range(n)],
            "open": [100.0 + i for i in range(n)],
            "high": [101.0 + i for i in range(n)],
            "low": [99.0 + i for i in range(n)],
            "close": [100.5 + i for i in range(n)],
            "volume": [1.0] * n,
        },
    )


def test_history_in_a_live_tick_serves_the_snapshot_bars(client) -> None:
    client.load("t-hist-live", "h", source=HISTORY_TICK, config={})
    state = client.tick("t-hist-live", "h", TICK, _bars_snapshot(5))["state"]
    assert state == {"close3": [102.5, 103.5, 104.5], "high2": [104.0, 105.0], "all": 5}
    # No bars in the snapshot (a market without quotes yet): empty lists, not an error.
    state = client.tick("t-hist-live", "h", TICK, snapshot("observe"))["state"]
    assert state == {"close3": [], "high2": [], "all": 0}
    client.unload("t-hist-live", "h")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("self.context.history(0)", "n must be an int between 1 and 1000"),
        (f"self.context.history({MAX_HISTORY_BARS + 1})", "n must be an int between 1 and 1000"),
        ("self.context.history(2.0)", "n must be an int"),
        ("self.context.history(True)", "n must be an int"),
        ("self.context.history(5, 'price')", "field must be one of ts, open, high, low, close, volume"),
        ("self.context.history(5, field=None)", "field must be one of"),
    ],
)
def test_history_refuses_bad_arguments_clearly(client, call: str, message: str) -> None:
    src = f"from sandbox.sdk import Strategy\nclass H(Strategy):\n    def on_tick(self, tick):\n        {call}\n"
    client.load("t-hist-bad", "h", source=src, config={})
    with pytest.raises(SandboxError) as err:
        client.tick("t-hist-bad", "h", TICK, _bars_snapshot(3))
    assert err.value.code == "RUNTIME_ERROR"
    assert message in str(err.value)
    client.unload("t-hist-bad", "h")


def test_history_list_is_a_copy(client) -> None:
    src = (
        "from sandbox.sdk import Strategy\nclass H(Strategy):\n    def on_tick(self, tick):\n"
        "        h = self.context.history(3)\n        h.append(1.0)\n        h[0] = -1.0\n"
        "        self.state['again'] = self.context.history(3)\n"
    )
    client.load("t-hist-copy", "h", source=src, config={})
    state = client.tick("t-hist-copy", "h", TICK, _bars_snapshot(3))["state"]
    assert state["again"] == [100.5, 101.5, 102.5]
    client.unload("t-hist-copy", "h")


# --------------------------------------------------------------------------- history: backtests

BACKTEST_TICK = """
from sandbox.sdk import Strategy

class H(Strategy):
    def on_tick(self, tick):
        if tick.close in (103.0, 105.0, 106.0):
            self.context.log(repr([self.context.history(4), self.context.history(2, "low"),
                                   self.context.history(3, "ts")]))
"""


def _bars(n: int) -> dict[str, list[float]]:
    return {
        "ts": [float(i) for i in range(n)],
        "open": [100.0 + i for i in range(n)],
        "high": [100.5 + i for i in range(n)],
        "low": [99.0 + i for i in range(n)],
        "close": [100.0 + i for i in range(n)],
        "volume": [1.0] * n,
    }


def _chunks(n: int, size: int) -> list[dict[str, list[float]]]:
    bars = _bars(n)
    return [{k: v[lo : lo + size] for k, v in bars.items()} for lo in range(0, n, size)]


def test_history_in_a_tick_backtest_reaches_across_chunks(client) -> None:
    client.load("t-hist-bt", "h", source=BACKTEST_TICK, config={})
    logs = []
    for chunk in _chunks(8, 5):  # bars 0..4, then 5..7: closes 105 and 106 look back over the seam
        logs += [line["msg"] for line in client.backtest("t-hist-bt", "h", chunk, {})["logs"]]
    assert logs == [
        repr([[100.0, 101.0, 102.0, 103.0], [101.0, 102.0], [1.0, 2.0, 3.0]]),
        repr([[102.0, 103.0, 104.0, 105.0], [103.0, 104.0], [3.0, 4.0, 5.0]]),
        repr([[103.0, 104.0, 105.0, 106.0], [104.0, 105.0], [4.0, 5.0, 6.0]]),
    ]
    client.unload("t-hist-bt", "h")


def test_history_in_a_backtest_starts_short(client) -> None:
    src = BACKTEST_TICK.replace("(103.0, 105.0, 106.0)", "(101.0,)")
    client.load("t-hist-bt", "short", source=src, config={})
    logs = [line["msg"] for line in client.backtest("t-hist-bt", "short", _bars(3), {})["logs"]]
    assert logs == [repr([[100.0, 101.0], [99.0, 100.0], [0.0, 1.0]])]
    client.unload("t-hist-bt", "short")


SIGNAL_ENTRY = """
def should_enter(ctx):
    if ctx.get_price() == 104.0:
        ctx.log(repr([ctx.history(3, "high"), len(ctx.history), ctx.history[-1]]))
    return []
"""
SIGNAL_EXIT = "def should_exit(ctx, position):\n    return None\n"


def test_history_in_a_signal_backtest_and_the_price_sequence_still_works(client) -> None:
    client.load(
        "t-hist-sig", "s", source=SIGNAL_ENTRY, exit_source=SIGNAL_EXIT, style="signal_bundle", config={}
    )
    logs = []
    for chunk in _chunks(6, 3):
        logs += [line["msg"] for line in client.backtest("t-hist-sig", "s", chunk, {"qty": 1})["logs"]]
    # close 104 is bar 4 (second chunk); highs of bars 2..4 = 102.5, 103.5, 104.5
    assert logs == [repr([[102.5, 103.5, 104.5], 5, 104.0])]
    client.unload("t-hist-sig", "s")


def test_signal_history_in_a_live_cycle(client) -> None:
    client.load(
        "t-hist-sig",
        "live",
        source=SIGNAL_ENTRY.replace("104.0", "100.0"),
        exit_source=SIGNAL_EXIT,
        style="signal_bundle",
        config={},
    )
    out = client.signal_cycle("t-hist-sig", "live", _bars_snapshot(4))
    assert [line["msg"] for line in out["logs"]] == [repr([[102.0, 103.0, 104.0], 1, 100.0])]
    client.unload("t-hist-sig", "live")


def test_uses_history_finds_every_way_of_asking() -> None:
    assert uses_history({"s.py": "x = self.context.history(3)"})
    assert uses_history({"s.py": "h = ctx.history\nh(3)"})
    assert uses_history({"s.py": "f = getattr(ctx, 'history')"})
    assert not uses_history({"s.py": "from sandbox.sdk import Strategy\nclass S(Strategy):\n    pass\n"})


def test_the_readme_indicator_example_validates_and_trades_in_a_backtest(client) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("\n### Recent bars and indicators\n") :]
    section = section[: section.index("\n### ", 5)]
    (source,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert validate_source(source).ok
    client.load("t-readme-ind", "x", source=source, config={})
    n = 400
    closes = [100 + 5 * math.sin(i / 15) for i in range(n)]
    bars = {
        "ts": [float(i) for i in range(n)],
        "open": closes,
        "high": [c + 0.5 for c in closes],
        "low": [c - 0.5 for c in closes],
        "close": closes,
        "volume": [1.0] * n,
    }
    result = client.backtest("t-readme-ind", "x", bars, {"starting_balance": 10_000})
    assert result["progress"]["orders_total"] >= 4 and result["trades"]
    client.unload("t-readme-ind", "x")
