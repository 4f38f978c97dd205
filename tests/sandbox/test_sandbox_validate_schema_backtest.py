"""Upload validation, CONFIG_SCHEMA handling and the backtest fill model."""

from __future__ import annotations

import pytest
from sbx_support import strategy

from sandbox import apply_config, validate_config_schema, validate_source
from sandbox.backtest import PaperBroker

GOOD = strategy(extra="CONFIG_SCHEMA = {'window': {'type': 'int', 'default': 20, 'min': 2, 'max': 500}}")


def test_valid_source_reports_schema_class_and_imports() -> None:
    report = validate_source("import math\n" + GOOD)
    assert report.ok and report.class_name == "S" and report.imports == ["math", "sandbox.sdk"]
    assert report.config_schema == {"window": {"type": "int", "default": 20, "min": 2, "max": 500}}


@pytest.mark.parametrize(
    ("source", "style", "code", "line"),
    [
        ("x = (1", "tick", "COMPILE_ERROR", 1),
        ("import os\n" + GOOD, "tick", "FORBIDDEN_IMPORT", 1),
        ("x = 1", "tick", "NO_STRATEGY_CLASS", None),
        (GOOD + "\nclass T(Strategy):\n    pass\n", "tick", "AMBIGUOUS_STRATEGY_CLASS", None),
        ("def nope(ctx):\n    return []", "signal_entry", "MISSING_FUNCTION", None),
        ("def should_exit(ctx):\n    return None", "signal_exit", "MISSING_FUNCTION", None),
        ("x = " + "(" * 300 + ")" * 300, "tick", "TOO_DEEP", None),
        ("x = " + "-" * 5000 + "1", "tick", "TOO_DEEP", None),
        ("x = 1\n" * 60000, "tick", "TOO_LARGE", None),
        (GOOD.replace("'min': 2", "'min': 'two'"), "tick", "BAD_SCHEMA", None),
        (strategy(extra="CONFIG_SCHEMA = make_schema()"), "tick", "BAD_SCHEMA", None),
        (strategy("x = tick.__class__"), "tick", "FORBIDDEN", 9),
    ],
)
def test_invalid_sources_are_reported(source: str, style: str, code: str, line: int | None) -> None:
    report = validate_source(source, style=style)
    assert not report.ok
    assert report.errors[0].code == code, report.errors
    if line is not None:
        assert report.errors[0].line == line


def test_a_file_that_validates_must_load() -> None:
    """Validation trial-loads the file under the load budget: a module body that never ends is refused."""
    report = validate_source("while True:\n    pass\n" + GOOD)
    assert not report.ok
    assert report.errors[0].code == "TIMEOUT", report.errors
    assert "does not load within the 2 s" in report.errors[0].message


def test_schema_validation_messages() -> None:
    assert validate_config_schema({"w": {"type": "int", "default": 1}}) == {}
    assert validate_config_schema([]) == {"__all__": "CONFIG_SCHEMA must be a dict of field specs"}
    assert "type must be one of" in validate_config_schema({"w": {"type": "list", "default": []}})["w"]
    assert (
        "default must be one of"
        in validate_config_schema({"s": {"type": "choice", "choices": ["a"], "default": "b"}})["s"]
    )
    assert (
        "min must not exceed max"
        in validate_config_schema({"w": {"type": "int", "default": 1, "min": 5, "max": 1}})["w"]
    )


def test_apply_config_fills_defaults_and_names_problems() -> None:
    schema = {
        "window": {"type": "int", "default": 20, "min": 2, "max": 500},
        "risk": {"type": "float", "default": 0.01, "min": 0, "max": 1},
        "side": {"type": "choice", "choices": ["long", "short"], "default": "long"},
        "note": {"type": "str", "default": ""},
        "enabled": {"type": "bool", "default": True},
    }
    clean, errors = apply_config(schema, {"risk": 1})
    assert errors == {} and clean == {"window": 20, "risk": 1.0, "side": "long", "note": "", "enabled": True}
    _, errors = apply_config(schema, {"window": True, "risk": 2, "side": "up", "bogus": 1, "enabled": 1})
    assert errors == {
        "window": "must be an integer, got boolean",
        "risk": "must be <= 1",
        "side": "must be one of 'long', 'short'",
        "bogus": "unknown field",
        "enabled": "must be true or false, got number",
    }


def test_paper_broker_fill_model() -> None:
    b = PaperBroker({"slippage_bps": 10, "fee_bps": 10, "starting_balance": 1000})
    b.new_order(side="buy", qty=1, ts=1.0, price=100.0, tag="in")
    assert b.qty == 1 and b.avg_price == pytest.approx(100.1)
    b.new_order(side="sell", qty=1, type="limit", limit=110.0, tag="tp", ts=1.0, price=100.0)
    b.on_bar(2.0, 108.0, 109.0, 107.0, 109.0)
    assert b.pending  # not touched: the bar's high stays below the limit
    b.on_bar(3.0, 109.0, 110.5, 108.5, 110.2)
    assert b.qty == 0 and len(b.trades) == 1
    trade = b.trades[0]
    assert trade["exit_price"] == 110.0 and trade["reason"] == "tp"
    assert trade["pnl"] == pytest.approx(110.0 - 100.1 - 0.11)
    # Marketable on arrival: fills at once at the close plus slippage, never beyond the limit.
    b.new_order(side="buy", qty=1, type="limit", limit=120.0, ts=4.0, price=100.0)
    assert b.qty == 1 and b.avg_price == pytest.approx(100.1) and not b.pending
    b.new_order(side="sell", qty=1, type="limit", limit=99.95, ts=5.0, price=100.0)
    assert b.qty == 0 and b.trades[-1]["exit_price"] == 99.95  # close - 10 bp = 99.9 is below the limit
