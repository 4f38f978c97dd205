"""`manage.py import_bars`: good files import; every bad row is reported by line; all-or-nothing."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.core.management import CommandError, call_command

from stratbox.markets.models import Bar

GOOD = """ts,open,high,low,close,volume
2026-01-01T00:00:00Z,100,101,99,100.5,10
2026-01-01T00:01:00Z,100.5,102,100,101,12
1767225720,101,101.5,100.5,101.2,0
"""


def _write(tmp_path, text):
    path = tmp_path / "bars.csv"
    path.write_text(text)
    return str(path)


def test_imports_iso_and_epoch_rows(tmp_path, market, capsys):
    call_command("import_bars", _write(tmp_path, GOOD), "--market", "SIM:BTC/USDT")
    assert "imported 3 bar(s)" in capsys.readouterr().out
    bars = list(Bar.objects.filter(market=market).order_by("ts"))
    assert [b.close for b in bars] == [D("100.5"), D("101"), D("101.2")]
    assert bars[2].ts.isoformat() == "2026-01-01T00:02:00+00:00"


BAD = """ts,open,high,low,close,volume
2026-01-01T00:00:00Z,100,101,99,100.5,10
2026-01-01T00:01:00Z,100,99,98,100.5,1
2026-01-01T00:02:00Z,100,101,100.2,100.5,1
2026-01-01T00:03:00Z,-1,101,99,100,1
2026-01-01T00:00:00Z,100,101,99,100.5,1
2025-12-31T00:00:00Z,100,101,99,100.5,1
yesterday,100,101,99,100.5,1
2026-01-01T00:09:00Z,abc,101,99,100.5,1
2026-01-01T00:10:00Z,100,101,99,nan,1
2026-01-01T00:11:00Z,100,101,99,100,-5
2026-01-01T00:12:00Z,100,101,99,100,1
"""


def test_every_bad_row_is_reported_and_nothing_is_imported(tmp_path, market, capsys):
    with pytest.raises(CommandError, match="9 bad row"):
        call_command("import_bars", _write(tmp_path, BAD), "--market", "SIM:BTC/USDT")
    err = capsys.readouterr().err
    for line, reason in [
        (3, "high 99 is below max(open, close)"),
        (4, "low 100.2 is above min(open, close)"),
        (5, "open '-1' must be positive"),
        (6, "duplicate ts"),
        (7, "is not after the previous row"),
        (8, "neither ISO 8601 nor an epoch"),
        (9, "open 'abc' is not a number"),
        (10, "close 'nan' is not finite"),
        (11, "volume '-5' must be >= 0"),
    ]:
        assert any(f"line {line}: " in row and reason in row for row in err.splitlines()), (line, err)
    assert Bar.objects.count() == 0


def test_skip_bad_imports_the_good_rows(tmp_path, market, capsys):
    call_command("import_bars", _write(tmp_path, BAD), "--market", "SIM:BTC/USDT", "--skip-bad")
    assert "imported 2 bar(s)" in capsys.readouterr().out
    assert Bar.objects.filter(market=market).count() == 2


def test_already_stored_bars_are_duplicates(tmp_path, market, capsys):
    path = _write(tmp_path, GOOD)
    call_command("import_bars", path, "--market", "SIM:BTC/USDT")
    with pytest.raises(CommandError):
        call_command("import_bars", path, "--market", "SIM:BTC/USDT")
    assert "already stored" in capsys.readouterr().err
    assert Bar.objects.count() == 3


def test_bad_header_unknown_market_and_interval(tmp_path, market):
    with pytest.raises(CommandError, match="missing column"):
        call_command("import_bars", _write(tmp_path, "ts,open,close\n1,2,3\n"), "--market", "SIM:BTC/USDT")
    with pytest.raises(CommandError, match="unknown market"):
        call_command("import_bars", _write(tmp_path, GOOD), "--market", "SIM:NOPE")
    call_command("import_bars", _write(tmp_path, GOOD), "--market", "SIM:BTC/USDT", "--interval", "300")
    assert set(Bar.objects.values_list("interval_seconds", flat=True)) == {300}
