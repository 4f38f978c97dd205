"""Signal style (seed 002): exits first, then sized entries within capital; sizing methods."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from stratbox.engine import runtime
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.sizing import entry_notional
from stratbox.engine.ticks.tick import tick_run
from stratbox.trading.models import Order

ENTRY = """
from sandbox.sdk import EntrySignal


def should_enter(ctx):
    if ctx.get_positions():
        return []
    return [EntrySignal(ctx.market, "long", "always in", 0.8)]
"""

EXIT = """
from sandbox.sdk import ExitSignal


def should_exit(ctx, position):
    return ExitSignal(position.position_id, "always out")
"""


@pytest.fixture
def bundle_version(tenant):
    from strategies_store.models import StrategyDefinition, StrategyVersion

    definition = StrategyDefinition.objects.create(
        tenant=tenant, key="in-out", name="in and out", style="signal_bundle", thesis="test"
    )
    return StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=ENTRY,
        exit_source=EXIT,
        sha256=hashlib.sha256((ENTRY + EXIT).encode()).hexdigest(),
        config_schema={},
    )


@pytest.mark.parametrize(
    ("method", "confidence", "config", "expected"),
    [
        ("fixed", 0.9, {}, Decimal("100")),
        ("kelly", 0.8, {}, Decimal("60.0")),  # f = 2p - 1 = 0.6 of total capital 100
        ("kelly", 0.5, {}, Decimal("0")),  # no edge, no bet
        ("kelly", 1.0, {}, Decimal("100")),  # capped at capital_per_trade
        ("percent_capital", 0.1, {}, Decimal("10")),  # default 10 %
        ("percent_capital", 0.1, {"percent_capital": 25}, Decimal("25")),
    ],
)
def test_entry_sizing(instance_factory, method, confidence, config, expected):
    inst = instance_factory(
        mode="off", total_capital=Decimal("100"), capital_per_trade=Decimal("100"), sizing_method=method
    )
    assert entry_notional(inst, confidence, config) == expected


def test_signal_cycle_enters_sized_then_exits(bundle_version, instance_factory, quote):
    inst = instance_factory(
        version=bundle_version,
        mode="observe",
        total_capital=Decimal("100"),
        capital_per_trade=Decimal("100"),
        sizing_method="kelly",
    )
    reconcile()
    base = runtime.rt_get(str(inst.pk))["next_due_at"]
    first = tick_run(inst.pk, base)
    assert first.status == "ok", first.error
    entry = Order.objects.get(instance=inst)
    assert entry.side == "buy" and entry.qty == Decimal("0.5996")
    # 60 at the gate's price for a market buy: ask 100.01 + the default 5 bp slippage = 100.060005,
    # 60 / 100.060005 = 0.59964.., floored to the 0.0001 lot
    assert entry.tag.startswith("entry:always in")
    second = tick_run(inst.pk, base + 1)
    assert second.status == "ok", second.error
    exit_order = Order.objects.filter(instance=inst).exclude(pk=entry.pk).get()
    assert exit_order.side == "sell" and exit_order.qty == entry.qty and exit_order.tag.startswith("exit:")
    assert exit_order.client_order_id == f"{inst.pk}-{int(base) + 1}-1"
