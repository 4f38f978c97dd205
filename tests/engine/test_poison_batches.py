"""Poison-proof batch writes: one tenant's unstorable data never fails another tenant's write.

PostgreSQL refuses NUL (text, and `\\u0000` in jsonb) and unpaired surrogates. The sandbox refuses
them too, but the engine must not depend on it: here the poison is put straight into the runtime
in Redis (what a sandbox that let it through would leave there), and into log lines and tags.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.models import InstanceRuntime, InstanceStats, Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.snapshots import BAD_STATE_PAUSE_AFTER, snapshot_flush, stats_rollup
from stratbox.engine.ticks.tick import tick_run
from tests.engine.conftest import make_instance, make_version, set_quote

NOISY_LOG = """
from sandbox.sdk import Strategy


class Noisy(Strategy):
    CONFIG_SCHEMA = {}

    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.context.log("before" + chr(0) + "after")
        self.context.place_order("buy", 0.01, tag="t" + chr(0))
"""


def _tick(inst: Any, ahead: float = 0.0) -> Any:
    rt = runtime.rt_get(str(inst.pk))
    return tick_run(inst.pk, rt["next_due_at"] + ahead)


def _poison_state(inst: Any, state: dict[str, Any]) -> None:
    r = runtime.r()
    r.hset(runtime.rt_key(str(inst.pk)), "state", runtime.dumps(state))
    r.sadd(runtime.DIRTY_KEY, str(inst.pk))


@pytest.fixture
def two_tenants(
    instance_factory: Any, other_tenant: Any, other_paper_account: Any, market: Any, quote: Any
) -> Any:
    from tests.engine.conftest import COUNTER

    bad = instance_factory(mode="observe", config={"every": 1000})
    good = make_instance(
        make_version(other_tenant, COUNTER), other_paper_account, market, config={"every": 1000}
    )
    reconcile()
    assert _tick(bad).status == "ok" and _tick(good).status == "ok"
    return bad, good


@pytest.mark.parametrize(
    ("poison", "path", "what"),
    [
        ({"n": 1, "note": "a\x00b"}, "state $.note", "contains a NUL character"),
        ({"n": 1, "deep": [{"x": "\ud800"}]}, "state $.deep[0].x", "contains an unpaired surrogate"),
        ({"n": 1, "k\x00": 1}, "state $.k\ufffd", "has a key that contains a NUL character"),
    ],
)
def test_an_unstorable_state_fails_only_its_own_instance(
    two_tenants: Any, poison: Any, path: str, what: str
) -> None:
    bad, good = two_tenants
    _poison_state(bad, poison)
    assert _tick(good, ahead=1).status == "ok"

    assert snapshot_flush() == 1  # the other tenant's row, in the same batch, is written
    assert InstanceRuntime.objects.get(instance=good).state == {"n": 2, "inits": 1}
    # Its last good snapshot (from the load) stays as it was.
    assert InstanceRuntime.objects.get(instance=bad).state_rev == 0
    # The offending instance shows a BAD_STATE error naming the path.
    error = runtime.rt_get(str(bad.pk))["last_error"]
    assert error["code"] == "BAD_STATE"
    assert error["path"] == path
    assert error["message"] == f"The runtime {path} {what}: it cannot be stored, so it is not snapshotted."


def test_a_persisting_bad_state_pauses_the_instance_with_a_reason(two_tenants: Any) -> None:
    bad, good = two_tenants
    for flush in range(BAD_STATE_PAUSE_AFTER):
        assert not runtime.rt_get(str(bad.pk))["paused"], flush
        _poison_state(bad, {"n": 1, "note": "\x00"})
        _tick(good, ahead=1 + flush)
        snapshot_flush()
    rt = runtime.rt_get(str(bad.pk))
    assert rt["paused"] and rt["pause_reason"] == "BAD_STATE"
    assert not runtime.rt_get(str(good.pk))["paused"]
    assert InstanceRuntime.objects.get(instance=good).state["n"] == 1 + BAD_STATE_PAUSE_AFTER


def test_a_batch_the_database_refuses_is_retried_row_by_row(two_tenants: Any) -> None:
    """Past validation (a fingerprint with NUL, in a text column): the statement fails, the retry
    writes every other row and names the refused one."""
    bad, good = two_tenants
    runtime.r().hset(runtime.rt_key(str(bad.pk)), "fingerprint", "fp\x00")
    runtime.r().sadd(runtime.DIRTY_KEY, str(bad.pk), str(good.pk))
    assert snapshot_flush() == 1
    assert InstanceRuntime.objects.filter(instance=good).exists()
    error = runtime.rt_get(str(bad.pk))["last_error"]
    assert error["code"] == "BAD_STATE" and "refused by the database" in error["message"]


def test_a_malformed_stats_hash_does_not_stop_the_roll_up(two_tenants: Any) -> None:
    bad, good = two_tenants
    r = runtime.r()
    r.hset(runtime.PREFIX + "stats:not-a-uuid", mapping={"runs": 5})
    r.hset(runtime.stats_key(str(bad.pk)), mapping={"runs": "x"})
    stats_rollup()
    assert InstanceStats.objects.get(instance=good).runs == 1
    assert InstanceStats.objects.get(instance=good).ok == 1


def test_a_nul_in_a_log_line_or_order_tag_never_fails_the_tick_silently(
    tenant: Any, paper_account: Any, market: Any
) -> None:
    set_quote(market)
    inst = make_instance(make_version(tenant, NOISY_LOG), paper_account, market)
    reconcile()
    outcome = _tick(inst)
    run = Run.objects.get(instance=inst)  # the run is recorded (it was not: the insert failed)
    assert outcome.status == run.status
    stored = json.dumps([run.logs, run.actions, run.error_message])
    assert "\\u0000" not in stored
    if run.status == "ok":
        assert run.logs[0]["msg"] == "before\ufffdafter"
        # The tag is refused by the trusted re-check, with its reason, not by a failed insert.
        assert run.actions[0]["message"] == "tag: must not contain NUL characters or unpaired surrogates"
    else:  # a sandbox that refuses the NUL itself: a visible, classified error
        assert run.error_code
