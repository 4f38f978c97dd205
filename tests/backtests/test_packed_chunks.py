"""The packed chunk wire format: bars in as float64 bytes, fills/trades out as base64 float64 —
checked as whole arrays by the worker, and equal to the unpacked format's content."""

from __future__ import annotations

import base64
import math
from array import array

import pytest

from sandbox import Limits, SandboxError
from sandbox.backtest import run_backtest
from sandbox.runtime import Instance
from stratbox.backtests.sandbox_client import normalize_chunk

KEEP = """
from sandbox.sdk import Strategy

class Keep(Strategy):
    def init(self):
        self.kept = []
        return {}

    def on_tick(self, tick):
        self.kept.append(tick)
        if len(self.kept) % 3 == 1:
            self.context.place_order("buy", 1.0, tag="in")
        elif len(self.kept) % 3 == 0:
            self.context.place_order("sell", 1.0, tag="out")
"""
PARAMS = {"slippage_bps": 5.0, "fee_bps": 10.0, "starting_balance": 1000.0}


def _cols(n: int) -> dict[str, list[float]]:
    close = [100.0 + math.sin(i) for i in range(n)]
    return {"ts": [1e9 + 60.0 * i for i in range(n)], "open": close, "high": close, "low": close,
            "close": close, "volume": [1.0] * n}  # fmt: skip


def _inst() -> Instance:
    return Instance(
        "k", style="tick", sources={"strategy.py": KEEP}, config={}, state=None, seed=0, limits=Limits()
    )


def test_packed_and_plain_chunks_agree_and_kept_ticks_never_change() -> None:
    cols = _cols(30)
    packed_bars = {k: array("d", v).tobytes() for k, v in cols.items()}
    a, b = _inst(), _inst()
    plain = run_backtest(a, cols, PARAMS, None)
    packed = normalize_chunk(run_backtest(b, packed_bars, PARAMS, None, packed=True))
    assert packed["fills"].tolist() == plain["fills"] and len(plain["fills"]) == 20
    assert [(t["entry_ts"], t["exit_price"], t["reason"]) for t in packed["trades"]] == [
        (t["entry_ts"], t["exit_price"], t["reason"]) for t in plain["trades"]
    ]
    assert packed["equity"] == plain["summary"]["equity"]
    kept = b.obj.kept  # every bar got its own Tick; none was reused or changed afterwards
    assert len({id(t) for t in kept}) == 30
    assert [t.close for t in kept] == cols["close"] and [t.ts for t in kept] == cols["ts"]


def test_bad_packed_columns_are_refused() -> None:
    cols = {k: array("d", v).tobytes() for k, v in _cols(5).items()}
    with pytest.raises(SandboxError) as exc:
        run_backtest(_inst(), {**cols, "close": cols["close"][:-3]}, PARAMS, None, packed=True)
    assert exc.value.code == "BAD_REQUEST"
    nan_close = array("d", [1.0, 2.0, float("nan"), 4.0, 5.0]).tobytes()
    with pytest.raises(SandboxError) as exc:
        run_backtest(_inst(), {**cols, "close": nan_close}, PARAMS, None, packed=True)
    assert exc.value.code == "BAD_REQUEST" and "finite" in exc.value.message


def _b64(values: list[float]) -> str:
    return base64.b64encode(array("d", values).tobytes()).decode()


GOOD = {
    "fills_packed": _b64([1.0, 1.0, 100.0, 0.1]),
    "trades_packed": _b64([]),
    "trade_reasons": [],
    "broker": {"qty": 1.0, "avg_price": 100.0, "entry_ts": 1.0},
    "summary": {"equity": 999.9},
}


@pytest.mark.parametrize(
    "change",
    [
        {"fills_packed": _b64([1.0, 1.0, float("nan"), 0.1])},
        {"fills_packed": _b64([1.0, 1.0, -100.0, 0.1])},
        {"fills_packed": _b64([1.0, 0.0, 100.0, 0.1])},
        {"fills_packed": _b64([1.0, 1.0, 100.0, -0.1])},
        {"fills_packed": _b64([1.0, 1.0, 100.0])},
        {"fills_packed": "not base64!"},
        {"fills_packed": [[1.0, 1.0, 100.0, 0.1]]},
        {"trades_packed": _b64([1, 2, 3.0, 1, 100, 101, 1])},
        {"trades_packed": _b64([1, 2, 1.0, -1, 100, 101, 1]), "trade_reasons": ["x"]},
        {"trades_packed": _b64([1, 2, 1.0, 1, 100, float("inf"), 1]), "trade_reasons": ["x"]},
        {"trades_packed": _b64([1, 2, 1.0, 1, 100, 101, 1]), "trade_reasons": []},
    ],
)
def test_malformed_packed_replies_are_a_host_crash(change: dict[str, object]) -> None:
    assert normalize_chunk(GOOD)["fills"].shape == (1, 4)
    with pytest.raises(SandboxError) as exc:
        normalize_chunk({**GOOD, **change})
    assert exc.value.code == "HOST_CRASHED" and "malformed" in exc.value.message
