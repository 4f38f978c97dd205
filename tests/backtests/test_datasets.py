"""Backtest CSV import: header spellings of common exporters, per-line errors, datasets stored once
per tenant (bulk-loaded with COPY) and reused by later backtests, tenant isolation, and a real run
of a strategy that reads ``context.history`` over a reused dataset."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from stratbox.backtests.csvbars import CsvInvalid, parse_bars_csv
from stratbox.backtests.datasets import dataset_bars_chunks
from stratbox.backtests.models import Backtest, BacktestTrade, BarDataset, DatasetBlock
from tests.backtests.conftest import make_version, wait_finished

URL = "/api/v1/backtests/"
DATASETS = "/api/v1/backtests/datasets/"

T0 = datetime(2024, 1, 2, tzinfo=UTC).timestamp()  # 1704153600
D1, D2 = "2024-01-02", "2024-01-03"
EXPECTED_TS = [T0, T0 + 86400]
EXPECTED_CLOSE = [10.5, 11.0]


# --------------------------------------------------------------------------- header spellings


@pytest.mark.parametrize(
    "text",
    [
        # backtesting.py's sample data (pandas to_csv of a DatetimeIndex: an unnamed first column)
        f",Open,High,Low,Close,Volume\n{D1},10,11,9,10.5,100\n{D2},10.5,12,10,11,50\n",
        # yfinance daily (Adj Close is ignored)
        f"Date,Open,High,Low,Close,Adj Close,Volume\n{D1},10,11,9,10.5,10.1,100\n{D2},10.5,12,10,11,10.9,50\n",
        # yfinance intraday: Datetime with a UTC offset
        "Datetime,Open,High,Low,Close,Volume\n"
        f"{D1} 00:00:00+00:00,10,11,9,10.5,100\n{D2} 00:00:00+00:00,10.5,12,10,11,50\n",
        # an offset other than UTC is honoured (the same instants)
        "Datetime,Open,High,Low,Close,Volume\n"
        "2024-01-01 19:00:00-05:00,10,11,9,10.5,100\n2024-01-02 19:00:00-05:00,10.5,12,10,11,50\n",
        # pandas to_csv with its default RangeIndex: a numeric unnamed column before Date
        f",Date,Open,High,Low,Close,Volume\n0,{D1},10,11,9,10.5,100\n1,{D2},10.5,12,10,11,50\n",
        # exchanges (ccxt, Binance klines): epoch milliseconds
        f"timestamp,open,high,low,close,volume\n{int(T0 * 1000)},10,11,9,10.5,100\n"
        f"{int(T0 * 1000) + 86_400_000},10.5,12,10,11,50\n",
        # our own format, epoch seconds, upper-case names, columns in another order, no volume
        f"TS,Close,Open,Low,High\n{int(T0)},10.5,10,9,11\n{int(T0) + 86400},11,10.5,10,12\n",
        # ISO with T and Z, quoted fields, a blank line, Windows line ends
        f'date,open,high,low,close,volume\r\n"{D1}T00:00:00Z",10,11,9,"10.5",100\r\n\r\n'
        f'"{D2}T00:00:00Z",10.5,12,10,11,50\r\n',
    ],
    ids=[
        "backtesting.py",
        "yfinance",
        "yfinance-intraday",
        "offset",
        "pandas-range-index",
        "exchange-ms",
        "reordered-no-volume",
        "quoted-crlf",
    ],
)
def test_header_spellings_of_common_exporters(text: str) -> None:
    cols = parse_bars_csv(text.encode())
    assert cols.ts.tolist() == EXPECTED_TS
    assert cols.close.tolist() == EXPECTED_CLOSE
    assert cols.high.tolist() == [11.0, 12.0] and cols.low.tolist() == [9.0, 10.0]
    assert cols.open.tolist() == [10.0, 10.5]
    assert cols.volume.tolist() in ([100.0, 50.0], [0.0, 0.0])


def test_a_utf8_bom_and_a_datetime_without_seconds_fraction_parse() -> None:
    text = "\ufeffDate,Open,High,Low,Close,Volume\n2024-01-02 00:00:00,10,11,9,10.5,1\n2024-01-03 00:00:00,10.5,12,10,11,1\n"
    assert parse_bars_csv(text.encode()).ts.tolist() == EXPECTED_TS


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("Open,High,Low,Close,Volume", "a time column"),
        ("Date,Open,High,Close,Volume", "low"),
        ("when,o,h,l,c,v", "a time column"),
    ],
)
def test_headers_without_the_needed_columns_are_refused_on_line_1(header: str, missing: str) -> None:
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv(f"{header}\n1,2,3,4,5,6\n")
    (error,) = info.value.errors
    assert error.line == 1 and "header must name" in error.reason and missing in error.reason


def test_per_line_errors_under_an_exporter_header() -> None:
    text = (
        ",Open,High,Low,Close,Volume\n"
        f"{D1},10,11,9,10.5,100\n"  # line 2 ok
        "2024-01-03,10,abc,9,10,1\n"  # line 3 high not a number
        "2024-01-04,10,9,8,10,1\n"  # line 4 high below open/close
        "2024-01-05,10,11,9\n"  # line 5 too few columns
        f"{D1},10,11,9,10,1\n"  # line 6 not increasing
        "someday,10,11,9,10,1\n"  # line 7 bad ts
        "2024-01-08,10,11,9,10,-1\n"  # line 8 negative volume
    )
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv(text)
    got = {e.line: e.reason for e in info.value.errors}
    assert sorted(got) == [3, 4, 5, 6, 7, 8]
    assert "high 'abc' is not a number" in got[3]
    assert "high is below" in got[4]
    assert "expected 6 columns, got 4" in got[5]
    assert "later than the previous" in got[6]
    assert "neither epoch seconds nor ISO 8601" in got[7]
    assert "volume must be >= 0" in got[8]


def test_fast_and_row_by_row_paths_agree() -> None:
    """A clean file takes numpy's reader; the same rows with one bad line go row by row (and
    fail); without that line the row-by-row values must equal the fast path's exactly."""
    rng = np.random.default_rng(7)
    closes = 100 + np.cumsum(rng.normal(0, 1, 500))
    lines = ["Date,Open,High,Low,Close,Volume"]
    for i, c in enumerate(closes):
        stamp = datetime.fromtimestamp(T0 + 3600 * i, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{stamp},{c:.4f},{c + 1:.4f},{c - 1:.4f},{c:.4f},{i}")
    fast = parse_bars_csv("\n".join(lines))
    # A blank-but-commas line sends the file down the row-by-row path without changing its bars.
    slow = parse_bars_csv("\n".join([*lines[:100], ",,,,,", *lines[100:]]))
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert getattr(fast, name).tolist() == getattr(slow, name).tolist()
    assert fast.ts[1] - fast.ts[0] == 3600.0


# --------------------------------------------------------------------------- datasets over the API


def _csv(n: int = 40, *, seed: int = 3) -> bytes:
    """yfinance-style daily bars with a few waves (so a crossover trades several times)."""
    out = io.StringIO()
    out.write("Date,Open,High,Low,Close,Adj Close,Volume\n")
    prev = 100.0
    for i in range(n):
        c = round(100 + 8 * math.sin(i / 3.0 + seed), 4)
        day = datetime.fromtimestamp(T0 + 86400 * i, tz=UTC).strftime("%Y-%m-%d")
        out.write(f"{day},{prev},{max(prev, c) + 0.5},{min(prev, c) - 0.5},{c},{c},{1000 + i}\n")
        prev = c
    return out.getvalue().encode()


def _import(client: Any, data: bytes, name: str = "GOOG.csv") -> Any:
    upload = io.BytesIO(data)
    upload.name = name
    return client.post(DATASETS, {"csv": upload}, format="multipart")


def _stored_bars(**filters: Any) -> int:
    """Bars stored in blocks, counted in SQL (cardinality of the ts arrays)."""
    return sum(len(ts) for ts in DatasetBlock.objects.filter(**filters).values_list("ts", flat=True))


def test_import_once_list_with_count_and_range_and_reimport_is_the_same_dataset(
    api_client, tenant, monkeypatch
) -> None:
    monkeypatch.setattr(DatasetBlock, "BLOCK_BARS", 7)  # several blocks, read back across their seams
    data = _csv(40)
    first = _import(api_client, data)
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["bars"] == 40 and body["name"] == "GOOG.csv" and body["interval_seconds"] == 86400
    assert body["first_ts"].startswith("2024-01-02") and body["last_ts"].startswith("2024-02-10")
    again = _import(api_client, data, name="renamed.csv")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert BarDataset.objects.filter(tenant=tenant).count() == 1
    assert _stored_bars(dataset_id=body["id"]) == 40  # stored once
    assert sorted(DatasetBlock.objects.values_list("seq", flat=True)) == [0, 1, 2, 3, 4, 5]
    listed = api_client.get(DATASETS).json()
    assert listed["count"] == 1 and listed["results"][0]["bars"] == 40
    # The bars come back exactly as parsed, in order, across chunk boundaries.
    chunks = list(dataset_bars_chunks(dataset_id=BarDataset.objects.get().pk, chunk=15))
    assert [len(c) for c in chunks] == [15, 15, 10]
    parsed = parse_bars_csv(data)
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.concatenate([getattr(c, name) for c in chunks]).tolist() == getattr(parsed, name).tolist()


def test_a_bad_csv_is_a_400_naming_each_line_and_stores_nothing(api_client) -> None:
    data = b"Date,Open,High,Low,Close,Volume\n2024-01-02,10,11,9,10.5,1\n2024-01-03,10,x,9,10,1\n2024-01-04,10,11,9\n"
    resp = _import(api_client, data)
    assert resp.status_code == 400
    text = resp.content.decode()
    assert "line 3: high 'x' is not a number" in text and "line 4: expected 6 columns, got 4" in text
    assert BarDataset.objects.count() == 0 and _stored_bars() == 0


def test_backtest_upload_imports_a_dataset_and_a_later_backtest_reuses_it(api_client, sma_version) -> None:
    data = _csv(30)
    upload = io.BytesIO(data)
    upload.name = "bars.csv"
    first = api_client.post(URL, {"version": str(sma_version.pk), "csv": upload}, format="multipart")
    assert first.status_code == 201, first.content
    dataset_id = first.json()["dataset"]
    second = api_client.post(
        URL, {"version": str(sma_version.pk), "dataset": dataset_id, "interval_seconds": 86400}, format="json"
    )
    assert second.status_code == 201, second.content
    bt = Backtest.objects.get(pk=second.json()["id"])
    assert str(bt.dataset_id) == dataset_id and bt.bars_total == 30 and bt.source == "csv"
    assert bt.csv_filename == "bars.csv"
    assert BarDataset.objects.count() == 1 and _stored_bars() == 30
    both = api_client.post(
        URL,
        {"version": str(sma_version.pk), "dataset": dataset_id, "csv": io.BytesIO(data)},
        format="multipart",
    )
    assert both.status_code == 400 and "dataset" in both.content.decode()


def test_datasets_are_tenant_scoped(
    api_client, other_api_client, tenant, other_tenant, other_sma_version
) -> None:
    data = _csv(20)
    mine = _import(api_client, data).json()
    assert other_api_client.get(f"{DATASETS}{mine['id']}/").status_code == 404
    assert api_client.get(f"{DATASETS}{mine['id']}/").status_code == 200
    assert other_api_client.get(DATASETS).json()["count"] == 0
    # Another tenant cannot run a backtest on it; the id is "unknown", never a leak.
    resp = other_api_client.post(
        URL, {"version": str(other_sma_version.pk), "dataset": mine["id"]}, format="json"
    )
    assert resp.status_code == 400 and "unknown dataset" in resp.content.decode()
    # The same file imported by the other tenant is its own dataset (nothing shared).
    theirs = _import(other_api_client, data)
    assert theirs.status_code == 201 and theirs.json()["id"] != mine["id"]
    assert BarDataset.objects.filter(tenant=other_tenant).count() == 1
    assert BarDataset.objects.filter(tenant=tenant).count() == 1


def test_viewer_lists_but_cannot_import(viewer_client, api_client) -> None:
    _import(api_client, _csv(10))
    assert viewer_client.get(DATASETS).json()["count"] == 1
    assert _import(viewer_client, _csv(12)).status_code == 403
    assert BarDataset.objects.count() == 1


def test_delete_a_dataset_refused_while_a_run_is_unfinished(
    api_client, other_api_client, viewer_client, sma_version
) -> None:
    data = _csv(25)
    dataset_id = _import(api_client, data).json()["id"]
    run = api_client.post(URL, {"version": str(sma_version.pk), "dataset": dataset_id}, format="json")
    assert run.status_code == 201
    assert other_api_client.delete(f"{DATASETS}{dataset_id}/").status_code == 404
    assert viewer_client.delete(f"{DATASETS}{dataset_id}/").status_code == 403
    busy = api_client.delete(f"{DATASETS}{dataset_id}/")
    assert busy.status_code == 409 and "DATASET_IN_USE" in busy.content.decode()
    assert _stored_bars(dataset_id=dataset_id) == 25
    Backtest.objects.filter(pk=run.json()["id"]).update(status="succeeded")
    assert api_client.delete(f"{DATASETS}{dataset_id}/").status_code == 204
    assert not BarDataset.objects.exists() and _stored_bars() == 0
    finished = Backtest.objects.get(pk=run.json()["id"])  # keeps its results and provenance
    assert finished.dataset_id is None and finished.csv_sha256 and finished.bars_total == 25
    gone = api_client.post(URL, {"version": str(sma_version.pk), "dataset": dataset_id}, format="json")
    assert gone.status_code == 400 and "unknown dataset" in gone.content.decode()


# --------------------------------------------------------------------------- a real run over a dataset

HISTORY_SMA = """
from sandbox.sdk import Strategy
from sandbox.indicators import SMA


class HistorySma(Strategy):
    def __init__(self):
        self.fast = SMA(2)

    def on_tick(self, tick):
        closes = self.context.history(5)
        fast = self.fast.update(tick.close)
        if len(closes) < 5 or fast is None:
            return
        slow = sum(closes) / 5
        position = self.context.get_position()
        if fast > slow and position is None:
            self.context.place_order("buy", 1.0, tag="up")
        elif fast < slow and position is not None:
            self.context.place_order("sell", position["qty"], tag="down")
"""


def _expected_trades(closes: list[float]) -> list[tuple[float, float]]:
    """The same rule in plain Python over the whole series: (entry price, exit price) per trade."""
    trades, entry = [], None
    for i in range(len(closes)):
        if i < 4:
            continue
        fast = (closes[i - 1] + closes[i]) / 2
        slow = sum(closes[i - 4 : i + 1]) / 5
        if fast > slow and entry is None:
            entry = closes[i]
        elif fast < slow and entry is not None:
            trades.append((entry, closes[i]))
            entry = None
    return trades


@pytest.mark.worker
def test_two_runs_over_one_dataset_read_history_across_chunks(worker, api_client, tenant) -> None:
    version = make_version(tenant, "history-sma", HISTORY_SMA)
    data = _csv(60, seed=1)
    dataset_id = _import(api_client, data).json()["id"]
    ids = []
    for chunk in (10, 25):  # history(5) reaches back over chunk seams in both runs
        resp = api_client.post(
            URL,
            {
                "version": str(version.pk),
                "dataset": dataset_id,
                "chunk_bars": chunk,
                "fee_bps": 0,
                "slippage_bps": 0,
                "interval_seconds": 86400,
            },
            format="json",
        )
        assert resp.status_code == 201, resp.content
        ids.append(resp.json()["id"])
    closes = parse_bars_csv(data).close.tolist()
    expected = _expected_trades(closes)
    assert len(expected) >= 2
    for backtest_id in ids:
        bt = wait_finished(backtest_id, timeout=120)
        assert bt.status == "succeeded", (bt.error_code, bt.error_message)
        assert bt.bars_done == 60
        got = [
            (t.entry_price, t.exit_price)
            for t in BacktestTrade.objects.filter(backtest=bt).order_by("seq")
            if t.exit_price is not None
        ]
        assert got == expected
    assert _stored_bars(dataset_id=dataset_id) == 60  # still stored once
