"""`manage.py import_bars FILE.csv --market VENUE:SYMBOL [--interval 60] [--skip-bad]`.

Columns ts,open,high,low,close[,volume]; ts is ISO 8601 or an epoch (seconds, or milliseconds).
Every bad row is printed as `line N: reason`; without `--skip-bad` nothing is imported when any
row is bad and the command exits non-zero.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stratbox.markets.services import BarImportError, bars_import, market_get_by_code


class Command(BaseCommand):
    help = "Import OHLCV bars from a CSV file (ts,open,high,low,close,volume) into a market."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--market", required=True, help="VENUE:SYMBOL, e.g. SIM:BTC/USDT")
        parser.add_argument("--interval", type=int, default=60, help="bar interval in seconds (default 60)")
        parser.add_argument(
            "--skip-bad", action="store_true", help="import the good rows and report the bad ones"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        market = market_get_by_code(opts["market"])
        if market is None:
            raise CommandError(
                f"unknown market {opts['market']!r} (expected VENUE:SYMBOL of an existing market)"
            )
        if opts["interval"] < 1:
            raise CommandError("--interval must be at least 1 second")
        path: Path = opts["file"]
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        with path.open(newline="", encoding="utf-8-sig") as stream:
            try:
                result = bars_import(
                    market=market, stream=stream, interval_seconds=opts["interval"], skip_bad=opts["skip_bad"]
                )
            except BarImportError as exc:
                raise CommandError(str(exc)) from exc
        for line, reason in result.errors:
            self.stderr.write(f"{path}: line {line}: {reason}")
        if result.errors and not opts["skip_bad"]:
            raise CommandError(
                f"{len(result.errors)} bad row(s) of {result.rows}; nothing imported "
                "(fix them, or pass --skip-bad to import the good rows)"
            )
        skipped = f", skipped {len(result.errors)} bad row(s)" if result.errors else ""
        self.stdout.write(f"imported {result.imported} bar(s) into {market.code}{skipped}")
