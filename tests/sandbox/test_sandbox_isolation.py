"""Attack class: cross-instance and cross-tenant leakage (SDK classes, module state, random state)."""

from __future__ import annotations

import pytest
from sbx_support import TICK, runner_fixture, snapshot, strategy

from sandbox import Limits, SandboxClient

runner = runner_fixture("t-iso")

COUNTER = strategy("global COUNT\nCOUNT += 1\nself.state['count'] = COUNT", module="COUNT = 0")
RANDOM = strategy("import random\nself.state['r'] = [random.randint(0, 10**9) for i in range(3)]")


def _tick(client: SandboxClient, tenant: str, iid: str) -> dict:
    return client.tick(tenant, iid, dict(TICK), snapshot())


def test_module_globals_are_per_instance(runner) -> None:
    c, t = runner.client, runner.tenant
    c.load(t, "a", source=COUNTER, config={})
    c.load(t, "b", source=COUNTER, config={})
    for _ in range(3):
        _tick(c, t, "a")
    assert _tick(c, t, "a")["state"]["count"] == 4
    assert _tick(c, t, "b")["state"]["count"] == 1
    c.unload(t, "a")
    c.unload(t, "b")
    runner.assert_healthy()


def test_random_is_seeded_per_instance(runner) -> None:
    c, t = runner.client, runner.tenant
    c.load(t, "r1", source=RANDOM, config={}, seed=42)
    c.load(t, "r2", source=RANDOM, config={}, seed=42)
    c.load(t, "r3", source=RANDOM, config={}, seed=43)
    first = _tick(c, t, "r1")["state"]["r"]
    _tick(c, t, "r1")  # consuming r1's stream does not move r2's
    assert _tick(c, t, "r2")["state"]["r"] == first
    assert _tick(c, t, "r3")["state"]["r"] != first
    for iid in ("r1", "r2", "r3"):
        c.unload(t, iid)


def test_reseeding_one_instance_does_not_affect_another(runner) -> None:
    c, t = runner.client, runner.tenant
    c.load(t, "s1", source=strategy("import random\nrandom.seed(1)"), config={}, seed=5)
    c.load(t, "s2", source=RANDOM, config={}, seed=42)
    c.load(t, "s3", source=RANDOM, config={}, seed=42)
    _tick(c, t, "s1")
    assert _tick(c, t, "s2")["state"] == _tick(c, t, "s3")["state"]
    for iid in ("s1", "s2", "s3"):
        c.unload(t, iid)


MUTATIONS = [
    ("sdk-class", "from sandbox.sdk import Strategy\nStrategy.render = None", "cannot modify class Strategy"),
    ("sdk-tick", "from sandbox.sdk import Tick\nTick.price = 0", "cannot modify class Tick"),
    ("module-attr", "import math\nmath.pi = 3", "cannot modify <module 'math' (sandboxed)>"),
    ("stdlib-class", "import collections\ncollections.deque.extra = 1", "cannot modify class deque"),
    ("stdlib-function", "import heapq\nheapq.nlargest.x = 1", "cannot modify a function object"),
    ("random-method", "import random\nrandom.random.x = 1", "cannot modify a function object"),
    (
        "fraction-class",
        "import fractions\nfractions.Fraction.limit_denominator = None",
        "cannot modify class Fraction",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_shared_objects_cannot_be_mutated(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "FORBIDDEN", message)
    # a fresh instance on the same host still sees pristine objects
    ok = strategy(
        "import math\nfrom sandbox.sdk import Strategy, Tick\n"
        "self.state['ok'] = math.pi > 3.14 and Strategy.render is not None and Tick is not None"
    )
    assert runner.ok(ok)["state"] == {"ok": True}


def test_tenants_get_separate_hosts_and_lru_eviction_restores_state() -> None:
    with SandboxClient(Limits(), max_hosts=2, prespawn=False) as c:
        src = strategy("self.state['n'] = self.state.get('n', 0) + 1")
        for tenant in ("ta", "tb"):
            c.load(tenant, "i", source=src, config={})
            _tick(c, tenant, "i")
        pid_a, pid_b = c.host_info("ta")["pid"], c.host_info("tb")["pid"]
        assert pid_a != pid_b
        _tick(c, "ta", "i")  # tb is now the least recently used
        c.load("tc", "i", source=src, config={})  # evicts the least recently used (tb)
        assert "tb" not in c._pool  # noqa: SLF001
        assert _tick(c, "tb", "i")["state"]["n"] == 2  # restored from the last good state, init not re-run
        assert c.host_info("tb")["pid"] not in (pid_a, pid_b)
