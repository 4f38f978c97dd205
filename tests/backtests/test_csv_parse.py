"""The CSV bar parser: every bad row named with its line number and reason."""

from __future__ import annotations

import pytest

from stratbox.backtests.csvbars import BarColumns, CsvInvalid, parse_bars_csv

GOOD = "ts,open,high,low,close,volume\n1700000000,10,11,9,10.5,100\n2023-11-14T22:14:20Z,10.5,12,10,11,50\n"


def test_good_file_parses_epoch_and_iso_timestamps() -> None:
    cols = parse_bars_csv(GOOD.encode())
    assert len(cols) == 2
    assert cols.ts.tolist() == [1700000000.0, 1700000060.0]
    assert cols.close.tolist() == [10.5, 11.0]
    again = BarColumns.unpack(cols.pack())
    assert again.high.tolist() == [11.0, 12.0] and again.volume.tolist() == [100.0, 50.0]


def test_each_bad_row_is_named_with_line_and_reason() -> None:
    text = (
        "ts,open,high,low,close,volume\n"
        "1700000000,10,11,9,10.5,100\n"  # line 2 ok
        "1700000060,10,abc,9,10,1\n"  # line 3 high not a number
        "1700000120,10,9,8,10,1\n"  # line 4 high below open/close
        "1700000180,10,11,9\n"  # line 5 too few columns
        "1700000000,10,11,9,10,1\n"  # line 6 not increasing
        "yesterday,10,11,9,10,1\n"  # line 7 bad ts
        "1700000300,10,11,9,10,-1\n"  # line 8 negative volume
        "1700000360,nan,11,9,10,1\n"  # line 9 NaN
        "1700000420,10,11,10.5,10,1\n"  # line 10 low above close
    )
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv(text)
    got = {e.line: e.reason for e in info.value.errors}
    assert sorted(got) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "high" in got[3] and "not a number" in got[3]
    assert "high is below" in got[4]
    assert "expected 6 columns" in got[5]
    assert "later than the previous" in got[6]
    assert "ts" in got[7]
    assert "volume" in got[8]
    assert "not finite" in got[9]
    assert "low is above" in got[10]


def test_bad_header_and_empty_files() -> None:
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv("time,o,h,l,c,v\n1,1,1,1,1,1\n")
    assert info.value.errors[0].line == 1 and "header" in info.value.errors[0].reason
    with pytest.raises(CsvInvalid):
        parse_bars_csv(b"")
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv("ts,open,high,low,close,volume\n")
    assert "no bars" in info.value.errors[0].reason
    with pytest.raises(CsvInvalid) as info:
        parse_bars_csv(b"\xff\xfe\x00bad")
    assert "UTF-8" in info.value.errors[0].reason
