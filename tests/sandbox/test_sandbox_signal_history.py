"""Signal-style ``ctx.history`` survives a reload: it travels (bounded) inside the persisted state.

An engine worker that reloads an instance with the state it saved -- after a restart, on another
worker, after an LRU eviction -- must hand ``should_enter`` the same recent prices; user code never
sees the reserved key and cannot forge it.
"""

from __future__ import annotations

import pytest
from sbx_support import snapshot

from sandbox import Limits, SandboxClient, SandboxError
from sandbox.runtime import HISTORY_KEY

ENTRY = """
def should_enter(ctx):
    ctx.state["seen"] = list(ctx.history)
    ctx.state["keys"] = sorted(k for k in ctx.state if k != "keys")
    return []
"""
EXIT = "def should_exit(ctx, position):\n    return None\n"


def _snap(price: float) -> dict:
    snap = snapshot("observe")
    snap["quote"] = dict(snap["quote"], price=price)
    return snap


def test_history_is_persisted_in_the_state_and_restored_on_reload(client) -> None:
    tenant = "t-hist"
    client.load(tenant, "sig", source=ENTRY, exit_source=EXIT, style="signal_bundle", config={})
    state = None
    for price in (100.0, 101.0, 102.5):
        state = client.signal_cycle(tenant, "sig", _snap(price))["state"]
    assert state[HISTORY_KEY] == [100.0, 101.0, 102.5]
    assert state["seen"] == [100.0, 101.0, 102.5]
    assert HISTORY_KEY not in state["keys"]  # user code never sees the reserved key

    client.unload(tenant, "sig")
    with SandboxClient(client.limits, max_hosts=1, prespawn=False) as other_worker:
        loaded = other_worker.load(
            tenant, "sig", source=ENTRY, exit_source=EXIT, style="signal_bundle", config={}, state=state
        )
        assert loaded["state"][HISTORY_KEY] == [100.0, 101.0, 102.5]
        out = other_worker.signal_cycle(tenant, "sig", _snap(103.0))
    assert out["state"]["seen"] == [100.0, 101.0, 102.5, 103.0]
    assert out["state"][HISTORY_KEY] == [100.0, 101.0, 102.5, 103.0]


def test_history_survives_a_failed_call_and_host_rebuild(client) -> None:
    tenant = "t-hist-fail"
    src = ENTRY.replace(
        "    return []", "    if ctx.get_price() == 0.5:\n        raise ValueError('boom')\n    return []"
    )
    client.load(tenant, "sig", source=src, exit_source=EXIT, style="signal_bundle", config={})
    client.signal_cycle(tenant, "sig", _snap(1.0))
    client.signal_cycle(tenant, "sig", _snap(2.0))
    with pytest.raises(SandboxError) as failed:
        client.signal_cycle(tenant, "sig", _snap(0.5))
    assert failed.value.code == "RUNTIME_ERROR"
    out = client.signal_cycle(tenant, "sig", _snap(3.0))  # rebuilt from the last good state, history included
    assert out["state"]["seen"] == [1.0, 2.0, 3.0]


def test_history_is_bounded_and_bad_saved_entries_are_dropped() -> None:
    with SandboxClient(Limits(max_history=3), max_hosts=1, prespawn=False) as c:
        saved = {"seen": [], HISTORY_KEY: [1.0, "2", None, True, 4.0, 5.0, 6.0]}
        c.load(
            "t-hist-bound",
            "sig",
            source=ENTRY,
            exit_source=EXIT,
            style="signal_bundle",
            config={},
            state=saved,
        )
        out = c.signal_cycle("t-hist-bound", "sig", _snap(7.0))
    assert out["state"]["seen"] == [5.0, 6.0, 7.0]
    assert out["state"][HISTORY_KEY] == [5.0, 6.0, 7.0]


def test_user_code_cannot_forge_the_history_key(client) -> None:
    src = "def should_enter(ctx):\n    ctx.state['" + HISTORY_KEY + "'] = [1e9]\n    return []\n"
    client.load("t-hist-forge", "sig", source=src, exit_source=EXIT, style="signal_bundle", config={})
    with pytest.raises(SandboxError) as forged:
        client.signal_cycle("t-hist-forge", "sig", _snap(1.0))
    assert forged.value.code == "BAD_STATE" and "reserved" in forged.value.message


def test_tick_style_state_is_untouched(client) -> None:
    src = (
        "from sandbox.sdk import Strategy\nclass S(Strategy):\n    def on_tick(self, tick):\n        self.state['"
        + HISTORY_KEY
        + "'] = 1\n"
    )
    client.load("t-hist-tick", "t", source=src, config={})
    out = client.tick("t-hist-tick", "t", {"market": "X", "ts": 1.0, "price": 1.0}, snapshot())
    assert out["state"] == {HISTORY_KEY: 1}
