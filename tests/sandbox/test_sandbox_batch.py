"""Several instances' ticks in one round trip: same results as alone, each call with its own budget."""

from __future__ import annotations

from sbx_support import TICK, snapshot, strategy

from sandbox import SandboxError

COUNTER = strategy(
    "self.state['n'] += self.config['step']",
    init="return {'n': 0}",
    extra="CONFIG_SCHEMA = {'step': {'type': 'int', 'default': 1}}",
)


def _tick(iid: str, **extra: object) -> dict:
    return {"instance_id": iid, "cmd": "tick", "tick": dict(TICK), "snapshot": snapshot(), **extra}


def test_a_batch_answers_each_call_in_order_like_single_calls(client) -> None:
    tenant = "t-batch"
    for n, iid in enumerate(("a", "b", "c"), start=1):
        client.load(tenant, iid, source=COUNTER, config={"step": n})
    out = client.cycle_many(tenant, [_tick("a"), _tick("b"), _tick("c", state={"n": 100})])
    assert [r["state"] for r in out] == [{"n": 1}, {"n": 2}, {"n": 103}]
    # The host kept each result: single calls continue from them.
    assert client.tick(tenant, "b", dict(TICK), snapshot())["state"] == {"n": 4}
    assert client.cycle_many(tenant, [_tick("missing"), _tick("a")])[0] is None  # not loaded: not run


def test_a_failing_call_fails_alone(client) -> None:
    tenant = "t-batch-fail"
    client.load(tenant, "ok", source=COUNTER, config={})
    client.load(tenant, "bad", source=strategy("raise ValueError('nope')"), config={})
    out = client.cycle_many(tenant, [_tick("bad"), _tick("ok")])
    assert isinstance(out[0], SandboxError) and out[0].code == "RUNTIME_ERROR" and "nope" in out[0].message
    assert out[1]["state"] == {"n": 1}


def test_an_overrun_is_its_own_timeout_and_the_rest_is_left_to_single_calls(fast_client) -> None:
    tenant = "t-batch-loop"
    fast_client.load(tenant, "first", source=COUNTER, config={})
    fast_client.load(tenant, "loop", source=strategy("while True:\n    pass"), config={})
    fast_client.load(tenant, "last", source=COUNTER, config={})
    out = fast_client.cycle_many(tenant, [_tick("first"), _tick("loop"), _tick("last")])
    assert out[0]["state"] == {"n": 1}
    assert isinstance(out[1], SandboxError) and out[1].code == "TIMEOUT"
    assert out[2] is None  # the host was stopped before it: never run, never half-run
    # Alone, in a fresh host, "last" continues from its last good state.
    assert fast_client.tick(tenant, "last", dict(TICK), snapshot())["state"] == {"n": 1}
