"""Attack class: shared mutable objects on SDK classes and module stand-ins.

``Strategy.CONFIG_SCHEMA`` used to be one plain dict inherited by every strategy without its own
schema: an instance could set another's defaults (an order of 1,000,000 instead of 1) or break
every later load with BAD_SCHEMA. The base schemas are read-only now, and an instance's schema is
the one stored with its validated version, never what the class attribute holds at run time.
"""

from __future__ import annotations

import uuid

import pytest
from sbx_support import TICK, runner_fixture, snapshot, strategy

runner = runner_fixture("t-shared")

POISON = [
    (
        "tick-schema-item",
        "from sandbox.sdk import Strategy\nStrategy.CONFIG_SCHEMA['qty'] = {'type': 'float', 'default': 1000000.0}",
    ),
    (
        "signal-schema-item",
        "from sandbox.sdk import SignalStrategy\nSignalStrategy.CONFIG_SCHEMA['x'] = 'not a spec'",
    ),
    ("inherited-schema-item", "self.CONFIG_SCHEMA['qty'] = {'type': 'float', 'default': 1000000.0}"),
    ("schema-update", "from sandbox.sdk import Strategy\nStrategy.CONFIG_SCHEMA.update({'x': 1})"),
]


@pytest.mark.parametrize("payload", [p[1] for p in POISON], ids=[p[0] for p in POISON])
def test_base_schemas_cannot_be_changed(runner, payload: str) -> None:
    runner.expect(strategy(payload), "RUNTIME_ERROR", "'mappingproxy' object")
    # A strategy without a schema of its own, loaded next in the same host, has an empty schema.
    iid = f"plain-{uuid.uuid4().hex[:6]}"
    loaded = runner.client.load(
        runner.tenant, iid, source=strategy("self.state['cfg'] = dict(self.config)"), config={}
    )
    assert loaded["config_schema"] == {}
    assert runner.client.tick(runner.tenant, iid, dict(TICK), snapshot())["state"] == {"cfg": {}}
    runner.client.unload(runner.tenant, iid)


def test_schema_comes_from_the_stored_version_not_the_class(runner) -> None:
    """The class rewrites its own CONFIG_SCHEMA at run time; the stored schema still decides the config."""
    stored = {"qty": {"type": "float", "default": 1.0, "min": 0.1, "max": 10.0}}
    src = (
        strategy(
            "self.context.place_order('buy', self.config['qty'])",
            extra="CONFIG_SCHEMA = {'qty': {'type': 'float', 'default': 1.0}}",
            module="",
        )
        + "S.CONFIG_SCHEMA = {'qty': {'type': 'float', 'default': 1000000.0}}\n"
    )
    iid = f"stored-{uuid.uuid4().hex[:6]}"
    loaded = runner.client.load(runner.tenant, iid, source=src, config={}, config_schema=stored)
    assert loaded["config_schema"] == stored
    result = runner.client.tick(runner.tenant, iid, dict(TICK), snapshot("active"))
    assert [i["qty"] for i in result["intents"]] == [1.0]
    runner.client.unload(runner.tenant, iid)
    runner.assert_healthy()


def test_an_empty_stored_schema_is_not_replaced_by_the_class(runner) -> None:
    src = strategy(
        "self.state['cfg'] = dict(self.config)", extra="CONFIG_SCHEMA = {'n': {'type': 'int', 'default': 5}}"
    )
    iid = f"empty-{uuid.uuid4().hex[:6]}"
    loaded = runner.client.load(runner.tenant, iid, source=src, config={}, config_schema={})
    assert loaded["config_schema"] == {}
    assert runner.client.tick(runner.tenant, iid, dict(TICK), snapshot())["state"] == {"cfg": {}}
    runner.client.unload(runner.tenant, iid)
