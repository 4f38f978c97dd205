"""Legitimate strategies that must keep working under the policy, plus the built-in catalog."""

from __future__ import annotations

import json
import math
import random

import pytest
from sbx_support import ROOT, TICK, runner_fixture, snapshot, strategy

from sandbox import SandboxError, validate_source

runner = runner_fixture("t-legit")
CATALOG = ROOT / "strategies_store" / "catalog"

LEGIT = [
    (
        "augmented-assignment",
        strategy(
            "self.n += 1\nself.state['c'] += 2\nlst = [1, 2]\nlst[0] *= 5\nself.items['k'] -= 1\n"
            "self.state['out'] = [self.n, lst[0], self.items['k']]",
            init="self.n = 0\nself.items = {'k': 10}\nreturn {'c': 0}",
        ),
        {"c": 2, "out": [1, 5, 9]},
    ),
    (
        "math-statistics",
        strategy(
            "import math\nimport statistics\nxs = [1.0, 2.0, 4.0, 8.0]\n"
            "self.state['r'] = [round(statistics.mean(xs), 3), round(statistics.stdev(xs), 3), math.floor(math.log2(8))]"
        ),
        {"r": [3.75, 3.096, 3]},
    ),
    (
        "deque-list",
        strategy(
            "from collections import deque\nd = deque(maxlen=3)\nfor x in range(10):\n    d.append(x)\n"
            "self.state['d'] = list(d)\nself.state['last'] = d[-1]"
        ),
        {"d": [7, 8, 9], "last": 9},
    ),
    (
        "dict-comprehension",
        strategy("self.state['sq'] = {str(k): k * k for k in range(4) if k % 2 == 0}"),
        {"sq": {"0": 0, "2": 4}},
    ),
    (
        "fstring-formats",
        strategy(
            "x = 1234.5678\nself.state['s'] = [f'{x:,.2f}', f'{x:>12.1f}', '{:.3f}'.format(x), '{a}-{b}'.format(a=1, b=2),"
            " format(x, '.1e'), '%.2f' % x, '{x}'.format_map({'x': 3})]"
        ),
        {"s": ["1,234.57", "      1234.6", "1234.568", "1-2", "1.2e+03", "1234.57", "3"]},
    ),
    (
        "helper-classes",
        strategy(
            "class Base:\n    def __init__(self, n):\n        self.n = n\n    def __repr__(self):\n        return f'B({self.n})'\n"
            "class Child(Base):\n    def __init__(self, n):\n        super().__init__(n * 2)\n        self.extra = True\n"
            "    def __lt__(self, other):\n        return self.n < other.n\n"
            "cs = sorted([Child(3), Child(1)])\nself.state['r'] = [repr(c) for c in cs]"
        ),
        {"r": ["B(2)", "B(6)"]},
    ),
    (
        "try-except",
        strategy(
            "try:\n    int('abc')\nexcept ValueError as e:\n    self.state['err'] = str(e)\nfinally:\n    self.state['done'] = True"
        ),
        {"err": "invalid literal for int() with base 10: 'abc'", "done": True},
    ),
    (
        "sorted-key-lambda",
        strategy(
            "rows = [{'m': 'b', 'v': 2}, {'m': 'a', 'v': 3}, {'m': 'c', 'v': 1}]\n"
            "self.state['by_v'] = [r['m'] for r in sorted(rows, key=lambda r: r['v'], reverse=True)]\n"
            "self.state['mx'] = max(rows, key=lambda r: r['v'])['m']"
        ),
        {"by_v": ["a", "b", "c"], "mx": "a"},
    ),
    (
        "datetime-decimal-fractions",
        strategy(
            "import datetime\nfrom decimal import Decimal, ROUND_HALF_UP\nfrom fractions import Fraction\n"
            "d = datetime.datetime.fromtimestamp(tick.ts, datetime.timezone.utc)\n"
            "self.state['r'] = [d.strftime('%Y-%m-%d'), str((Decimal('1.005') * 2).quantize(Decimal('0.01'), ROUND_HALF_UP)),"
            " str(Fraction(1, 3) + Fraction(1, 6)), str(self.context.get_balance())]"
        ),
        {"r": ["2023-11-14", "2.01", "1/2", "1000.50"]},
    ),
    (
        "collections-itertools",
        strategy(
            "from collections import Counter, defaultdict, namedtuple\nimport itertools, functools, heapq, bisect, operator\n"
            "P = namedtuple('P', 'a b')\ndd = defaultdict(list)\ndd['x'].append(1)\n"
            "self.state['r'] = [Counter('aab').most_common(1)[0][0], P(1, 2).b, dd['x'],"
            " list(itertools.accumulate([1, 2, 3])), functools.reduce(operator.add, [1, 2, 3]), heapq.nsmallest(2, [5, 1, 3]),"
            " bisect.bisect_left([1, 3, 5], 4)]"
        ),
        {"r": ["a", 2, [1], [1, 3, 6], 6, [1, 3], 2]},
    ),
    (
        "unpacking-walrus-generators",
        strategy(
            "a, (b, *rest) = 1, (2, 3, 4)\nfirst, *_ = [9, 8]\ntotal = sum(x for x in range(5))\n"
            "if (n := len(rest)) > 1:\n    self.state['r'] = [a, b, rest, first, total, n, max(*rest)]"
        ),
        {"r": [1, 2, [3, 4], 9, 10, 2, 4]},
    ),
    (
        "context-reads",
        strategy(
            "p = self.context.get_position()\nself.state['r'] = [self.context.get_price(), p['qty'],"
            " len(self.context.get_orders()), tick.market, tick.bid]"
        ),
        {"r": [100.0, 1.0, 1, "BTC-USD", 99.5]},
    ),
    ("print-logs", strategy("print('hello', 42)\nself.context.log('warn me', level='warning')"), None),
    ("random-seeded", strategy("import random\nself.state['r'] = random.randint(0, 1000)"), None),
]


@pytest.mark.parametrize(("source", "expected"), [c[1:] for c in LEGIT], ids=[c[0] for c in LEGIT])
def test_legitimate_strategies_work(runner, source: str, expected: dict | None) -> None:
    result = runner.ok(source)
    if expected is not None:
        assert result["state"] == expected


def test_print_becomes_logs(runner) -> None:
    result = runner.ok(strategy("print('hello', 42)\nself.context.log('warn me', level='warning')"))
    assert result["logs"] == [{"level": "info", "msg": "hello 42"}, {"level": "warning", "msg": "warn me"}]


def test_random_matches_a_seeded_python_random(runner) -> None:
    result = runner.ok(strategy("import random\nself.state['r'] = random.randint(0, 1000)"))
    assert result["state"]["r"] == random.Random(7).randint(0, 1000)


def test_state_restore_skips_init_and_live_config_updates(client) -> None:
    src = strategy(
        "self.state['n'] += self.config['step']",
        init="return {'n': 100}",
        extra="CONFIG_SCHEMA = {'step': {'type': 'int', 'default': 1, 'min': 1, 'max': 5, 'live': True},"
        " 'w': {'type': 'int', 'default': 3}}",
    )
    out = client.load("t-legit2", "r", source=src, config={"step": 2}, state={"n": 5})
    assert out["state"] == {"n": 5}
    assert client.tick("t-legit2", "r", dict(TICK), snapshot())["state"] == {"n": 7}
    client.update_config("t-legit2", "r", {"step": 4})
    assert client.tick("t-legit2", "r", dict(TICK), snapshot())["state"] == {"n": 11}
    with pytest.raises(SandboxError) as info:
        client.update_config("t-legit2", "r", {"w": 9})
    assert info.value.code == "BAD_CONFIG" and "'w' is not live" in info.value.message
    with pytest.raises(SandboxError) as info:
        client.load("t-legit2", "bad", source=src, config={"step": 9})
    assert info.value.code == "BAD_CONFIG" and "must be <= 5" in info.value.message
    assert client.is_loaded("t-legit2", "r", client._specs[("t-legit2", "r")].fingerprint)  # noqa: SLF001
    client.unload("t-legit2", "r")
    assert not client.is_loaded("t-legit2", "r", "")


def _walk(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    price, bars = 100.0, []
    for i in range(n):
        price = max(1.0, price * math.exp(rng.gauss(0, 0.01)))
        bars.append(
            {
                "ts": 1700000000.0 + 60 * i,
                "open": price,
                "high": price * 1.004,
                "low": price * 0.996,
                "close": price,
                "volume": 1.0,
            }
        )
    return bars


TICK_CATALOG = ["sma_crossover", "mean_reversion", "breakout"]


@pytest.mark.parametrize("key", TICK_CATALOG)
def test_catalog_tick_strategies_validate_run_and_render(client, key: str) -> None:
    source = (CATALOG / f"{key}.py").read_text()
    report = validate_source(source)
    assert report.ok, report.errors
    assert report.config_schema
    client.load("t-catalog", key, source=source, config={}, seed=1)
    intents = 0
    for bar in _walk(300):
        tick = {
            "market": "BTC-USD",
            "ts": bar["ts"],
            "price": bar["close"],
            "bid": bar["close"],
            "ask": bar["close"],
            "volume": 1.0,
            "high": bar["high"],
            "low": bar["low"],
        }
        intents += len(client.tick("t-catalog", key, tick, snapshot("observe"))["intents"])
    assert intents > 0
    widgets = client.render("t-catalog", key)["widgets"]
    assert len(widgets) >= 3 and {w["type"] for w in widgets} & {"metric", "line_chart"}
    result = client.backtest(
        "t-catalog", key, _walk(2000, seed=3), {"slippage_bps": 5, "fee_bps": 10, "starting_balance": 10000}
    )
    assert result["progress"]["bars"] == 2000 and result["trades"] and result["equity"]
    client.unload("t-catalog", key)


def test_catalog_signal_bundle(client) -> None:
    entry = (CATALOG / "momentum_signals" / "entry.py").read_text()
    exit_ = (CATALOG / "momentum_signals" / "exit.py").read_text()
    meta = json.loads((CATALOG / "momentum_signals" / "config.json").read_text())
    assert set(meta) >= {"name", "description", "thesis", "config_schema"}
    assert validate_source(entry, style="signal_entry", filename="entry.py").ok
    assert validate_source(exit_, style="signal_exit", filename="exit.py").ok
    out = client.load(
        "t-catalog",
        "mom",
        source=entry,
        exit_source=exit_,
        style="signal_bundle",
        config={"lookback": 5},
        config_schema=meta["config_schema"],
    )
    assert out["config_schema"]["lookback"]["default"] == 20
    entries = []
    for i, price in enumerate([100, 100, 100, 100, 100, 100, 103, 106]):
        snap = snapshot("observe", quote={"market": "BTC-USD", "price": float(price), "ts": float(i)})
        entries = client.signal_cycle("t-catalog", "mom", snap)["entries"]
    assert entries and entries[0]["market"] == "BTC-USD" and entries[0]["side"] == "long"
    snap = snapshot(
        positions=[
            {
                "position_id": "p9",
                "market": "BTC-USD",
                "side": "long",
                "qty": 1.0,
                "entry_price": 100.0,
                "current_price": 110.0,
                "unrealized_pnl": 10.0,
                "opened_at": 1.0,
            }
        ]
    )
    exits = client.signal_cycle("t-catalog", "mom", snap)["exits"]
    assert exits == [{"position_id": "p9", "reason": "take profit +10.00%"}]
    assert client.render("t-catalog", "mom")["widgets"][1]["value"] >= 1
    bt = client.backtest(
        "t-catalog",
        "mom",
        _walk(3000, seed=5),
        {"slippage_bps": 0, "fee_bps": 0, "starting_balance": 1000, "qty": 1},
    )
    assert bt["trades"] and bt["progress"]["bars_total"] == 3000
    client.unload("t-catalog", "mom")


def test_catalog_manifest_lists_every_strategy() -> None:
    manifest = json.loads((CATALOG / "manifest.json").read_text())
    keys = {s["key"]: s for s in manifest["strategies"]}
    assert set(keys) == {"sma_crossover", "mean_reversion", "breakout", "momentum_signals"}
    for entry in keys.values():
        assert entry["style"] in ("tick", "signal_bundle")
        for f in entry["files"]:
            assert (CATALOG / f).is_file()


def test_a_call_can_carry_the_state_to_continue_from(client) -> None:
    """Another process ticked the instance: the call brings the persisted state; no reload, no init()."""
    src = strategy(
        "self.state['n'] += 1\nif tick.price > 1000:\n    raise ValueError('boom')",
        init="self.context.log('init ran')\nreturn {'n': 0}",
    )
    client.load("t-sync", "s", source=src, config={})
    assert client.tick("t-sync", "s", dict(TICK), snapshot())["state"] == {"n": 1}
    result = client.tick("t-sync", "s", dict(TICK), snapshot(), state={"n": 40})
    assert result["state"] == {"n": 41}
    assert result["logs"] == []  # init() did not run again
    assert client.tick("t-sync", "s", dict(TICK), snapshot())["state"] == {"n": 42}
    with pytest.raises(SandboxError):
        client.tick("t-sync", "s", dict(TICK, price=5000.0), snapshot(), state={"n": 49})
    # The failed call falls back to the state it was given, not to the one the host held before it.
    assert client.tick("t-sync", "s", dict(TICK), snapshot())["state"] == {"n": 50}
    with pytest.raises(SandboxError) as info:
        client.tick("t-sync", "s", dict(TICK), snapshot(), state={"n": float("nan")})
    assert info.value.code == "BAD_STATE"
