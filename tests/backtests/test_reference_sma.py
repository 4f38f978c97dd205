"""Correctness: an SMA(3/5) crossover over the committed dataset, every trade and the final equity
checked against values worked out by hand — and against a tiny independent plain-Python replay of
the same rules written here (it shares no code with the platform).

Fill model (the paper broker's, see stratbox/trading/brokers/paper.py): a market order placed on a
bar fills at that bar's close * (1 + 5 bps) when buying, * (1 - 5 bps) when selling; the fee is
10 bps of the notional. Qty 10, capital 10,000.
"""

from __future__ import annotations

import pytest

from tests.backtests.conftest import REFERENCE_CSV, reference_rows, wait_finished

pytestmark = pytest.mark.worker

SLIP = 5 / 1e4
FEE = 10 / 1e4
QTY = 10.0
CAPITAL = 10_000.0
T0 = 1_700_000_000

# By hand (closes at bars 7, 12, 17, 23, 28 are 102, 99, 100, 101, 103; the last close is 104):
#  trade 1: buy bar 7 at 102 * 1.0005 = 102.051, sell bar 12 at 99 * 0.9995 = 98.9505
#           fees (102.051 + 98.9505) * 10 * 0.001 = 2.010015; P&L 10 * (98.9505 - 102.051) - 2.010015 = -33.015015
#  trade 2: buy bar 17 at 100.05, sell bar 23 at 100.9495; fees 2.009995; P&L 8.995 - 2.009995 = 6.985005
#  open:    buy bar 28 at 103.0515 (fee 1.030515), still open at the end (close 104)
#  final equity = 10000 - 33.015015 + 6.985005 + 10 * (104 - 103.0515) - 1.030515 = 9982.424475
HAND_TRADES = [
    (T0 + 7 * 60, 102.051, T0 + 12 * 60, 98.9505, 2.010015, -33.015015),
    (T0 + 17 * 60, 100.05, T0 + 23 * 60, 100.9495, 2.009995, 6.985005),
]
HAND_OPEN = (T0 + 28 * 60, 103.0515)
HAND_FINAL_EQUITY = 9982.424475


def independent_replay(rows: list[dict[str, float]]) -> dict[str, object]:
    """The same rules in plain Python: SMA(3) vs SMA(5) crossover, long only, fills at the close."""
    closes: list[float] = []
    cash, qty, prev, entry = CAPITAL, 0.0, None, None
    trades, equity = [], []
    for bar in rows:
        closes.append(bar["close"])
        window = closes[-5:]
        if len(window) == 5:
            diff = sum(window[-3:]) / 3 - sum(window) / 5
            if prev is not None and prev <= 0 < diff and qty == 0:
                price = bar["close"] * (1 + SLIP)
                cash -= QTY * price + QTY * price * FEE
                qty, entry = QTY, (bar["ts"], price)
            elif prev is not None and prev >= 0 > diff and qty > 0:
                price = bar["close"] * (1 - SLIP)
                cash += QTY * price - QTY * price * FEE
                fees = (entry[1] + price) * QTY * FEE
                trades.append((entry[0], entry[1], bar["ts"], price, fees, (price - entry[1]) * QTY - fees))
                qty, entry = 0.0, None
            prev = diff
        equity.append(cash + qty * bar["close"])
    peak, mdd = CAPITAL, 0.0
    for e in equity:
        peak = max(peak, e)
        mdd = max(mdd, (peak - e) / peak)
    return {"trades": trades, "open": entry, "equity": equity, "max_drawdown": mdd}


def test_hand_values_agree_with_the_independent_replay() -> None:
    replay = independent_replay(reference_rows())
    assert len(replay["trades"]) == len(HAND_TRADES)
    for got, want in zip(replay["trades"], HAND_TRADES, strict=True):
        assert got == pytest.approx(want, abs=1e-9)
    assert replay["open"] == pytest.approx(HAND_OPEN)
    assert replay["equity"][-1] == pytest.approx(HAND_FINAL_EQUITY, abs=1e-9)


def test_sma_reference_backtest_matches_hand_computed_trades(worker, api_client, sma_version) -> None:
    with REFERENCE_CSV.open("rb") as fh:
        resp = api_client.post(
            "/api/v1/backtests/",
            {
                "version": str(sma_version.pk),
                "config": '{"fast": 3, "slow": 5, "qty": 10.0}',
                "starting_capital": "10000",
                "slippage_bps": 5,
                "fee_bps": 10,
                "chunk_bars": 10,  # three chunks: trades and the open position cross chunk edges
                "csv": fh,
            },
            format="multipart",
        )
    assert resp.status_code == 201, resp.content
    bt = wait_finished(resp.json()["id"])
    assert bt.status == "succeeded", (bt.error_code, bt.error_message)

    trades = api_client.get(f"/api/v1/backtests/{bt.pk}/trades/").json()["results"]
    closed = [t for t in trades if t["exit_ts"] is not None]
    assert len(closed) == 2
    for t, (ets, ep, xts, xp, fees, pnl) in zip(closed, HAND_TRADES, strict=True):
        assert t["side"] == "long" and t["qty"] == 10.0
        assert t["entry_ts"] == ets and t["exit_ts"] == xts
        assert t["entry_price"] == pytest.approx(ep, abs=1e-9)
        assert t["exit_price"] == pytest.approx(xp, abs=1e-9)
        assert t["fees"] == pytest.approx(fees, abs=1e-9)
        assert t["pnl"] == pytest.approx(pnl, abs=1e-9)
    assert [t["reason"] for t in closed] == ["death cross", "death cross"]  # the closing order's tag
    (still_open,) = [t for t in trades if t["exit_ts"] is None]
    assert (still_open["entry_ts"], still_open["entry_price"]) == pytest.approx(HAND_OPEN)

    detail = api_client.get(f"/api/v1/backtests/{bt.pk}/").json()
    res = detail["results"]
    assert float(res["final_equity"]) == pytest.approx(HAND_FINAL_EQUITY, abs=0.005)
    assert float(res["pnl"]) == pytest.approx(HAND_FINAL_EQUITY - CAPITAL, abs=0.005)
    assert res["total_return"] == pytest.approx(HAND_FINAL_EQUITY / CAPITAL - 1, abs=1e-9)
    assert res["num_trades"] == 2 and res["open_trades"] == 1
    assert res["win_rate"] == 0.5
    assert res["exposure"] == pytest.approx(13 / 30)  # in the market at the close of bars 7-11, 17-22, 28-29
    replay = independent_replay(reference_rows())
    assert res["max_drawdown"] == pytest.approx(replay["max_drawdown"], abs=1e-12)
    # every bar is on the stored curve (30 < 2,000) and it ends at the final equity
    equity = api_client.get(f"/api/v1/backtests/{bt.pk}/equity/").json()
    assert len(equity["points"]) == 30
    assert [p[1] for p in equity["points"]] == pytest.approx(replay["equity"], abs=1e-9)
    assert [m["kind"] for m in equity["markers"]] == ["entry", "exit", "entry", "exit", "entry"]
    # provenance: the code version, its hash and the config snapshot (defaults applied)
    prov = detail["provenance"]
    assert prov["version_id"] == str(sma_version.pk) and prov["sha256"] == sma_version.sha256
    assert prov["config"] == {"fast": 3, "slow": 5, "qty": 10.0}
    assert prov["broker_params"]["slippage_bps"] == 5.0 and prov["broker_params"]["fee_bps"] == 10.0
    assert prov["csv_sha256"]
    assert detail["progress"]["done"] == detail["progress"]["total"] == 30
