"""The door into the sandbox: one cycle of a strategy in its tenant's host, and its reply re-checked.

The strategy's authoring style is decided in one place (`is_signal`): a tick-style strategy is sent
the tick (`on_tick`), a signal-style one runs a signal cycle (`should_enter` / `should_exit`), whose
signals are then sized in trusted code (`sizing.signal_intents`).
"""

from __future__ import annotations

from typing import Any

from stratbox.engine import replies as host_replies
from stratbox.engine import sandboxes
from stratbox.engine.ticks.inputs import tick_from_quote
from stratbox.engine.ticks.sizing import signal_intents
from stratbox.instances.models import StrategyInstance
from strategies_store.models import StrategyStyle

Outcome = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]


def is_signal(instance: StrategyInstance) -> bool:
    """Whether the instance's strategy is signal style (else tick style)."""
    return instance.version.definition.style == StrategyStyle.SIGNAL_BUNDLE


def host_call(
    instance: StrategyInstance,
    key: str,
    tick: dict[str, Any],
    snapshot: dict[str, Any],
    signal: bool,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One cycle of the user's code in the tenant's host; returns the host's raw reply."""
    client = sandboxes.client()
    if signal:
        return client.signal_cycle(str(instance.tenant_id), key, snapshot, state=state)
    return client.tick(str(instance.tenant_id), key, tick, snapshot, state=state)


def host_command(
    instance: StrategyInstance, iid: str, quote: dict[str, Any], snapshot: dict[str, Any], state: Any
) -> dict[str, Any]:
    """The same cycle as one call of a host's `cycle_many` (several due ticks in one round trip)."""
    call: dict[str, Any] = {"instance_id": iid, "snapshot": snapshot, "state": state}
    if is_signal(instance):
        call["cmd"] = "signal_cycle"
    else:
        call["cmd"] = "tick"
        call["tick"] = tick_from_quote(quote, instance.market.code)
    return call


def call_strategy(
    instance: StrategyInstance, rt: dict[str, Any], tick: dict[str, Any], snapshot: dict[str, Any], key: str
) -> Outcome:
    """Run the user's code once; returns (raw result, intents, skipped actions)."""
    sync = sandboxes.ensure_runtime_loaded(instance, rt, key)
    signal = is_signal(instance)
    result = host_call(instance, key, tick, snapshot, signal, state=sync)
    return strategy_outcome(instance, result, snapshot, signal)


def strategy_outcome(
    instance: StrategyInstance, result: dict[str, Any], snapshot: dict[str, Any], signal: bool
) -> Outcome:
    """The host's reply re-checked in trusted code (`replies`); forged intents come back denied."""
    checked, intents, skipped = host_replies.strategy_outcome(
        instance, result, snapshot, signal=signal, limits=sandboxes.limits()
    )
    if signal:
        intents, more = signal_intents(instance, checked, snapshot, snapshot["quote"])
        skipped = skipped + more
    return checked, intents, skipped
