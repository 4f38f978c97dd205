"""Backtest chunks streamed one ahead (``SandboxClient.backtest_stream``): the host runs chunk k+1
while the worker handles chunk k, with the same results as one call per chunk."""

from __future__ import annotations

import math

import pytest

from sandbox import ErrorCode, SandboxError

# Orders on most bars, a bracket resting across chunk seams, history read across seams.
SOURCE = """
from sandbox.sdk import Strategy


class Swing(Strategy):
    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        n = self.state["n"]
        if n == FAIL_AT:
            raise ValueError("boom")
        back = self.context.history(3)
        if n % 7 == 0:
            self.context.place_order("buy", 1.0, sl="1%", tp="1%", tag=str(back[0]))
        elif n % 7 == 4:
            self.context.close_position()
"""
PARAMS = {"slippage_bps": 5.0, "fee_bps": 10.0, "starting_balance": 100_000.0}


def _chunks(n: int, size: int) -> list[dict[str, list[float]]]:
    close = [100.0 + 3 * math.sin(i / 5) for i in range(n)]
    bars = {
        "ts": [60.0 * i for i in range(n)],
        "open": [close[max(i - 1, 0)] for i in range(n)],
        "high": [c + 1.2 for c in close],
        "low": [c - 1.2 for c in close],
        "close": close,
        "volume": [5.0] * n,
    }
    return [{k: v[lo : lo + size] for k, v in bars.items()} for lo in range(0, n, size)]


def _same(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "timings"}


def test_a_stream_gives_what_one_call_per_chunk_gives(client) -> None:
    chunks = _chunks(1000, 150)
    client.load("t-stream", "calls", source=SOURCE.replace("FAIL_AT", "-1"), config={})
    client.load("t-stream", "stream", source=SOURCE.replace("FAIL_AT", "-1"), config={})
    one_by_one = [_same(client.backtest("t-stream", "calls", c, PARAMS, packed=True)) for c in chunks]
    streamed = [
        _same(r)
        for r in client.backtest_stream("t-stream", "stream", ((c, PARAMS) for c in chunks), packed=True)
    ]
    assert len(streamed) == len(chunks) == 7
    assert streamed == one_by_one
    assert one_by_one[-1]["progress"]["fills_total"] > 100  # the busy path: brackets filled and cancelled
    host = client._pool["t-stream"]  # noqa: SLF001
    assert host.alive() and not host.buf  # nothing left over in the pipe
    client.unload("t-stream", "calls")
    client.unload("t-stream", "stream")


def test_a_failed_chunk_ends_the_stream_and_stops_the_host_busy_with_the_next(client) -> None:
    client.load("t-stream-fail", "s", source=SOURCE.replace("FAIL_AT", "230"), config={})
    host = client._pool["t-stream-fail"]  # noqa: SLF001
    got = []
    with pytest.raises(SandboxError) as err:
        for result in client.backtest_stream(
            "t-stream-fail", "s", ((c, PARAMS) for c in _chunks(600, 100)), packed=True
        ):
            got.append(result["progress"]["bars_total"])
    assert err.value.code == ErrorCode.RUNTIME_ERROR and "boom" in err.value.message
    assert got == [100, 200]  # bar 230 is in the third chunk; the fourth was already sent
    assert not host.alive()  # it would have run the fourth chunk for nobody
    assert "t-stream-fail" not in client._pool  # noqa: SLF001
    client.unload("t-stream-fail", "s")


def test_leaving_a_stream_early_stops_the_host_and_the_next_call_gets_a_fresh_one(client) -> None:
    client.load("t-stream-stop", "s", source=SOURCE.replace("FAIL_AT", "-1"), config={})
    host = client._pool["t-stream-stop"]  # noqa: SLF001
    stream = client.backtest_stream(
        "t-stream-stop", "s", ((c, PARAMS) for c in _chunks(600, 100)), packed=True
    )
    assert next(stream)["progress"]["bars_total"] == 100
    stream.close()  # the second chunk is in flight
    assert not host.alive()
    again = client.backtest("t-stream-stop", "s", _chunks(100, 100)[0], PARAMS, packed=True)
    assert again["progress"]["bars"] == 100 and client._pool["t-stream-stop"] is not host  # noqa: SLF001
    client.unload("t-stream-stop", "s")
