"""Tick execution in-process: idempotency, coalescing, modes, failures, automatic pauses, kill switch."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from stratbox.engine import runtime
from stratbox.engine.control import EngineRuleError, instance_pause, instance_resume, tenant_kill_switch
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.trading.models import Order
from tenants.models import AuditEvent
from tests.engine.conftest import set_quote


def _rt(inst):
    return runtime.rt_get(str(inst.pk))


def _next(inst, k=0):
    return _rt(inst)["next_due_at"] + k


def test_same_tick_twice_places_one_order(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    slot = _next(inst)
    first = tick_run(inst.pk, slot)
    second = tick_run(inst.pk, slot)
    assert first.status == "ok" and second.status == "duplicate"
    assert Order.objects.filter(instance=inst).count() == 1
    order = Order.objects.get(instance=inst)
    assert order.client_order_id == f"{inst.pk}-{int(slot)}-1" and order.is_shadow
    assert _rt(inst)["state"]["n"] == 1
    assert Run.objects.filter(instance=inst, trigger="scheduled").count() == 1
    # The claim outlives every chance of the slot running (lateness bound: 5 s or two periods),
    # and no longer: claims of 1-second ticks must not pile up in Redis for hours.
    assert 5 < runtime.r().ttl(runtime.claim_key(str(inst.pk), int(slot))) <= 60 + 2 * 1


def test_late_or_old_slots_are_not_run(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    slot = _next(inst)
    assert tick_run(inst.pk, slot - 3600).status == "late"  # a message redelivered an hour later
    assert tick_run(inst.pk, slot + 1).status == "ok"
    assert tick_run(inst.pk, slot).status == "late"  # older than the last slot run
    assert _rt(inst)["state"]["n"] == 1 and Order.objects.filter(instance=inst).count() == 1


def test_tick_interrupted_after_ordering_is_replayed_without_a_second_order(instance_factory, quote):
    """The crash window: orders placed, state not yet persisted. The next tick replays the slot first."""
    inst = instance_factory(mode="observe")
    reconcile()
    slot = int(_next(inst))
    persisted = _rt(inst)
    assert tick_run(inst.pk, slot).status == "ok"
    # Rewind Redis to what it held while that tick was in flight (as if its worker died then).
    inflight = {
        "slot": slot,
        "seq": slot,
        "tick": {
            "market": "SIM:BTC/USDT",
            "ts": 1.0,
            "price": 100.0,
            "bid": 99.99,
            "ask": 100.01,
            "volume": 1.0,
        },
        "quote": quote,
        "trigger": "scheduled",
        "due_at": float(slot),
        "started": 0,
        "worker": "dead:1",
    }
    runtime.r().hset(
        runtime.rt_key(str(inst.pk)),
        mapping={
            "state": json.dumps(persisted["state"]),
            "state_rev": persisted["state_rev"],
            "inflight": json.dumps(inflight),
        },
    )
    outcome = tick_run(inst.pk, slot + 1)
    assert outcome.status == "ok" and outcome.recovered
    seqs = sorted(Order.objects.filter(instance=inst).values_list("client_order_id", flat=True))
    assert seqs == [f"{inst.pk}-{slot}-1", f"{inst.pk}-{slot + 1}-1"]  # nothing lost, nothing twice
    rt = _rt(inst)
    assert rt["state"]["n"] == 2 and rt["inflight"] is None


def test_busy_instance_tick_is_coalesced_and_counted(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    token = runtime.lock_acquire(str(inst.pk))  # another tick of this instance is running
    try:
        outcome = tick_run(inst.pk, _next(inst))
    finally:
        runtime.lock_release(str(inst.pk), token)
    assert outcome.status == "coalesced"
    assert _rt(inst)["coalesced_ticks"] == 1 and _rt(inst)["state"]["n"] == 0
    assert not Order.objects.filter(instance=inst).exists()


def test_dispatcher_never_queues_a_second_tick_while_one_is_queued(instance_factory, quote):
    inst = instance_factory(mode="observe")
    reconcile()
    due = _next(inst)
    assert due == int(due) + runtime.phase(str(inst.pk))  # whole-second slot + the instance's phase
    assert runtime.due_take(due + 0.1) == [(str(inst.pk), due)]
    assert _rt(inst)["next_due_at"] == due + 1
    # not started yet: the next two slots are coalesced, not queued
    assert runtime.due_take(due + 1.1) == []
    assert runtime.due_take(due + 2.1) == []
    assert _rt(inst)["coalesced_ticks"] == 2
    tick_run(inst.pk, due)  # the queued tick starts: the instance may be queued again
    assert [(i, int(d)) for i, d in runtime.due_take(due + 3.1)] == [(str(inst.pk), int(due) + 3)]


def test_slots_queued_ahead_stop_when_started_ticks_lag(instance_factory, quote):
    """The dispatcher queues ahead (lookahead) while ticks keep starting; once the newest started
    slot is older than two periods plus the grace, further slots are coalesced: no unbounded
    backlog."""
    inst = instance_factory(mode="observe")
    reconcile()
    due = _next(inst)
    assert [int(d) for _, d in runtime.due_take(due - 1.5, lookahead=1.5)] == [int(due)]
    tick_run(inst.pk, due)  # started (and done) on time
    # Ahead of time, the next two slots are queued although neither has started yet...
    assert [int(d) for _, d in runtime.due_take(due - 0.4, lookahead=1.5)] == [int(due) + 1]
    assert [int(d) for _, d in runtime.due_take(due + 0.6, lookahead=1.5)] == [int(due) + 2]
    # ... but nothing starts any more: when the newest started slot lags by two periods and the
    # grace, further slots are coalesced.
    assert [int(d) for _, d in runtime.due_take(due + 1.6, lookahead=1.5)] == [int(due) + 3]
    assert runtime.due_take(due + 3.1, lookahead=1.5) == []
    assert _rt(inst)["coalesced_ticks"] >= 1


def test_observe_and_active_run_identical_logic(instance_factory, quote, big_limits):
    observe = instance_factory(mode="observe")
    active = instance_factory(mode="active")
    reconcile()
    out_o = tick_run(observe.pk, _next(observe))
    out_a = tick_run(active.pk, _next(active))
    assert out_o.state == out_a.state == {"n": 1, "inits": 1}
    assert [a["kind"] for a in out_o.actions] == ["shadow"]
    assert [a["kind"] for a in out_a.actions] == ["order"]
    shadow = Order.objects.get(instance=observe)
    real = Order.objects.get(instance=active)
    assert shadow.is_shadow and shadow.status == "shadow"
    assert not real.is_shadow and real.status == "filled"
    assert shadow.qty == real.qty == Decimal("0.01")
    active.account.refresh_from_db()
    assert active.account.balance < Decimal("100000")


def test_a_tick_continues_from_the_state_another_worker_persisted_without_a_reload(
    instance_factory, quote, monkeypatch
):
    """The host here holds revision 1; another worker ticked since (Redis holds a newer revision).
    The next tick here sends that state with the call: it continues from it, without reloading."""
    from stratbox.engine import sandboxes

    inst = instance_factory(mode="observe")
    reconcile()
    assert tick_run(inst.pk, _next(inst)).status == "ok"
    loads = []
    real_load = sandboxes.load
    monkeypatch.setattr(sandboxes, "load", lambda **kw: loads.append(kw) or real_load(**kw))
    rt = _rt(inst)
    # What another worker's tick leaves behind: a later state revision, a new state.
    runtime.r().hset(
        runtime.rt_key(str(inst.pk)),
        mapping={"state": json.dumps({**rt["state"], "n": 41}), "state_rev": rt["state_rev"] + 1},
    )
    assert tick_run(inst.pk, _next(inst, 1)).status == "ok"
    assert _rt(inst)["state"]["n"] == 42 and _rt(inst)["state_rev"] == rt["state_rev"] + 2
    assert tick_run(inst.pk, _next(inst, 2)).status == "ok"
    assert _rt(inst)["state"]["n"] == 43
    assert loads == []  # continued in the same host: no reload, no recompile


def test_crashing_strategy_records_failed_run_and_keeps_last_good_state(instance_factory, quote):
    inst = instance_factory(mode="observe", config={"crash_at": 3})
    reconcile()
    assert tick_run(inst.pk, _next(inst)).status == "ok"
    assert tick_run(inst.pk, _next(inst, 1)).status == "ok"
    failed = tick_run(inst.pk, _next(inst, 2))
    assert failed.status == "error"
    run = Run.objects.get(pk=failed.run_id)
    assert run.status == "error" and run.error_code == "RUNTIME_ERROR"
    assert "boom at 3" in run.error_message and "strategy.py" in run.traceback
    assert run.version_id == inst.version_id and run.config_snapshot["crash_at"] == 3
    rt = _rt(inst)
    assert rt["state"]["n"] == 2  # the half-run tick's mutation is not kept
    assert rt["consecutive_failures"] == 1 and rt["last_error"]["code"] == "RUNTIME_ERROR"
    assert Order.objects.filter(instance=inst).count() == 2


def test_circuit_breaker_pauses_after_n_failures(instance_factory, quote, settings):
    settings.ENGINE_CIRCUIT_BREAKER_FAILURES = 3
    inst = instance_factory(mode="observe", config={"crash_at": 1})
    reconcile()
    base = _next(inst)
    for k in range(3):
        assert tick_run(inst.pk, base + k).status == "error"
    rt = _rt(inst)
    assert rt["paused"] and rt["pause_reason"] == "CIRCUIT_BREAKER"
    assert runtime.r().zscore(runtime.DUE_KEY, str(inst.pk)) is None
    assert (
        AuditEvent.objects.filter(
            action="instance.auto_pause", target_id=str(inst.pk), after__reason="CIRCUIT_BREAKER"
        ).count()
        == 1
    )
    assert tick_run(inst.pk, rt["last_tick_at"] + 100).status == "paused"
    assert Run.objects.filter(instance=inst).count() == 3


def test_a_tick_whose_own_fill_reaches_the_daily_loss_limit_pauses_right_after_it(
    instance_factory, market, paper_account, big_limits
):
    """The day's P&L after a tick's fills: the snapshot's, moved by q·(mark − price) − fee per buy.

    At mark 100 (ask 100.01) with 100 bps slippage and a 100 bps fee, buying 0.5 fills at 101.0101
    with a fee of 0.50505050: the day's P&L becomes 0.5 × (100 − 101.0101) − 0.5050505 = −1.0101005.
    """
    from django.utils import timezone

    from stratbox.trading.selectors import instance_daily_pnl

    paper_account.slippage_bps = paper_account.fee_bps = Decimal("100")
    paper_account.save(update_fields=["slippage_bps", "fee_bps"])
    set_quote(market, price=100.0)
    breach = instance_factory(mode="active", config={"qty": 0.5}, max_daily_loss=Decimal("1.01"))
    within = instance_factory(mode="active", config={"qty": 0.5}, max_daily_loss=Decimal("1.02"))
    reconcile()
    for inst in (breach, within):
        assert tick_run(inst.pk, _next(inst)).status == "ok"
        assert Order.objects.get(instance=inst).fill_price == Decimal("101.0101")
        day = instance_daily_pnl(instance=inst, day=timezone.now().date(), marks={market.pk: Decimal("100")})
        assert day == Decimal("-1.0101005")  # the stored figures agree with the tick's
    assert _rt(breach)["paused"] and _rt(breach)["pause_reason"] == "DAILY_LOSS_LIMIT"
    assert not _rt(within)["paused"]


def test_daily_loss_breach_pauses_the_instance(instance_factory, market, big_limits):
    set_quote(market, price=100.0)
    inst = instance_factory(mode="active", config={"qty": 0.5}, max_daily_loss=Decimal("10"))
    reconcile()
    base = _next(inst)
    assert tick_run(inst.pk, base).status == "ok"
    assert Order.objects.get(instance=inst).status == "filled"
    set_quote(market, price=70.0)  # the open position now loses ~15
    tick_run(inst.pk, base + 1)
    rt = _rt(inst)
    assert rt["paused"] and rt["pause_reason"] == "DAILY_LOSS_LIMIT"
    assert AuditEvent.objects.filter(action="instance.auto_pause", after__reason="DAILY_LOSS_LIMIT").exists()
    orders = Order.objects.filter(instance=inst).count()
    assert tick_run(inst.pk, base + 5).status == "paused"
    assert Order.objects.filter(instance=inst).count() == orders


def test_kill_switch_pauses_every_instance_and_lifting_resumes_only_its_own(
    instance_factory, quote, tenant, user
):
    a = instance_factory(mode="observe")
    b = instance_factory(mode="observe")
    c = instance_factory(mode="observe")
    reconcile()
    base = _next(a)
    instance_pause(instance=c, actor=user)
    tenant_kill_switch(tenant=tenant, on=True, actor=user)
    for inst in (a, b):
        assert _rt(inst)["pause_reason"] == "KILL_SWITCH"
        assert runtime.r().zscore(runtime.DUE_KEY, str(inst.pk)) is None
    assert tick_run(a.pk, base).status == "paused"
    with pytest.raises(EngineRuleError) as exc:
        instance_resume(instance=a, actor=user)
    assert exc.value.code == "KILL_SWITCH"
    assert not Order.objects.filter(instance__tenant=tenant).exists()
    assert AuditEvent.objects.filter(action="tenant.kill_switch.on").count() == 1
    tenant_kill_switch(tenant=tenant, on=False, actor=user)
    assert not _rt(a)["paused"] and not _rt(b)["paused"]
    assert _rt(c)["paused"] and _rt(c)["pause_reason"] == "USER"
    assert tick_run(a.pk, _next(a) + 1).status == "ok"


def test_kill_switch_set_directly_is_enforced_by_the_tick(instance_factory, quote, tenant):
    """Even if only the database row says killed (e.g. set by staff), the next tick pauses instead of acting."""
    inst = instance_factory(mode="active")
    reconcile()
    from django.utils import timezone

    tenant.killed_at = timezone.now()
    tenant.save(update_fields=["killed_at"])
    assert tick_run(inst.pk, _next(inst)).status == "paused"
    assert _rt(inst)["pause_reason"] == "KILL_SWITCH"
    assert not Order.objects.filter(instance=inst).exists()


def test_quiet_runs_are_sampled_but_all_counted(tenant, paper_account, market, quote, settings):
    from stratbox.engine.selectors import instance_stats
    from stratbox.engine.snapshots import stats_rollup
    from tests.engine.conftest import QUIET, make_instance, make_version

    settings.ENGINE_RUN_SAMPLE_EVERY = 4
    inst = make_instance(make_version(tenant, QUIET), paper_account, market)
    reconcile()
    base = int(_next(inst))
    for k in range(8):
        assert tick_run(inst.pk, base + k).status == "ok"
    runs = Run.objects.filter(instance=inst)
    # the first run after a load, and 1 in 4 of the rest: the slots on the instance's own offset
    offset = (uuid.UUID(str(inst.pk)).int >> 32) % 4
    sampled = {s for s in range(base, base + 8) if (s + offset) % 4 == 0}
    assert len(sampled) == 2  # 8 slots, 1 in 4
    assert set(runs.values_list("tick_seq", flat=True)) == {base} | sampled
    assert instance_stats(instance=inst)["runs"] == 8
    stats_rollup()
    assert instance_stats(instance=inst)["runs"] == 8 and instance_stats(instance=inst)["ok"] == 8


def test_dispatch_groups_slots_with_an_eta(instance_factory, quote):
    from stratbox.engine.dispatcher import dispatch_once

    a = instance_factory(mode="observe")
    b = instance_factory(mode="observe")
    reconcile()
    sent = []
    now = min(_next(a), _next(b)) - 0.5
    # The two first dues lie up to a second apart, more when reconcile() spans a busy moment: a
    # look-ahead of 4 s holds each instance's first two slots (one per dispatch) either way.
    n = dispatch_once(now=now, enqueue=lambda batch, eta: sent.append((batch, eta)), lookahead=4.0)
    assert n == 2
    for batch, eta in sent:  # in due order, one slot per batch; the ETA is the last due
        dues = [item[1] for item in batch]
        assert dues == sorted(dues) and eta == dues[-1] and len({int(d) for d in dues}) == 1
    # dispatching again never queues the same slot twice: only the following slots come out
    dispatch_once(now=now, enqueue=lambda batch, eta: sent.append((batch, eta)), lookahead=4.0)
    pairs = [tuple(item) for batch, _ in sent for item in batch]
    assert len(pairs) == len(set(pairs)) == 4


def test_dispatcher_fills_resting_limit_orders_once_per_quote(instance_factory, market, big_limits):
    from django.utils import timezone

    from stratbox.engine.dispatcher import markets_mark_to_market
    from stratbox.trading.services import order_place

    set_quote(market, price=100.0)
    inst = instance_factory(mode="active")
    reconcile()
    intent = {
        "kind": "order",
        "client_order_id": f"{inst.pk}-1-1",
        "side": "buy",
        "qty": 0.01,
        "type": "limit",
        "price": 95.0,
        "tag": None,
    }
    placed = order_place(
        instance=inst, intent=intent, quote=set_quote(market, price=100.0), mode="active", now=timezone.now()
    )
    assert placed.order.status == "accepted"
    assert markets_mark_to_market() == 1
    set_quote(market, price=94.0)
    assert markets_mark_to_market() == 1
    assert markets_mark_to_market() == 0  # the same quote is not processed twice
    placed.order.refresh_from_db()
    assert placed.order.status == "filled"


def test_dispatch_batches_span_a_short_stretch_of_the_second(instance_factory, quote, settings):
    instances = [instance_factory(mode="observe") for _ in range(4)]
    reconcile()
    dues = sorted(_next(i) for i in instances)
    sent = []
    settings.ENGINE_BATCH_SPAN = 0.0  # every distinct due time is its own batch
    dispatch_once_at = min(dues) - 0.5
    from stratbox.engine.dispatcher import dispatch_once

    assert (
        dispatch_once(now=dispatch_once_at, enqueue=lambda b, eta: sent.append((b, eta)), lookahead=3.0) == 4
    )
    assert len(sent) == len(set(dues))
    assert [eta for _, eta in sent] == sorted({d for d in dues})  # in due order


def test_a_batch_begins_every_tick_in_one_step_and_keeps_every_guarantee(instance_factory, quote):
    from stratbox.engine.ticks.batch import tick_run_batch

    free, busy, done = (instance_factory(mode="observe") for _ in range(3))
    reconcile()
    slot = {i: int(_next(i)) for i in (free, busy, done)}
    assert tick_run(done.pk, slot[done]).status == "ok"
    token = runtime.lock_acquire(str(busy.pk))  # another worker is ticking it
    try:
        outcomes = tick_run_batch([(str(i.pk), slot[i]) for i in (free, busy, done)])
    finally:
        runtime.lock_release(str(busy.pk), token)
    assert [o.status for o in outcomes] == ["ok", "coalesced", "duplicate"]
    assert _rt(busy)["coalesced_ticks"] == 1 and _rt(busy)["state"]["n"] == 0
    assert _rt(done)["state"]["n"] == 1 and _rt(free)["state"]["n"] == 1
    # every lock the batch took is released
    assert not any(runtime.r().exists(runtime.lock_key(str(i.pk))) for i in (free, busy, done))


def test_a_batch_runs_each_tick_at_its_own_due_time(instance_factory, quote):
    """A batch starts at its first due time; later members wait for theirs (none starts early)."""
    import time

    from stratbox.engine.ticks.batch import tick_run_batch

    a = instance_factory(mode="observe")
    b = instance_factory(mode="observe")
    reconcile()
    start = time.time()
    slot = int(start) + 1
    items = [(str(a.pk), slot + 0.05), (str(b.pk), slot + 0.25)]
    time.sleep(max(slot + 0.05 - time.time(), 0))
    outcomes = tick_run_batch(items)
    assert [o.status for o in outcomes] == ["ok", "ok"]
    runs = {str(r.instance_id): r for r in Run.objects.filter(instance__in=[a, b], tick_seq=slot)}
    for iid, due in items:
        assert runs[iid].started_at.timestamp() >= due
    # ... and the first did not wait for the last of its batch.
    assert runs[str(a.pk)].finished_at.timestamp() < items[1][1]


def test_due_ticks_of_a_batch_run_in_one_host_round_trip_with_the_same_effects(
    instance_factory, quote, monkeypatch
):
    """Everything due runs together in the tenant's host; each tick keeps its own outcome."""
    import time

    from sandbox import SandboxClient
    from stratbox.engine.control import instance_pause
    from stratbox.engine.ticks.batch import tick_run_batch

    ok = [instance_factory(mode="observe") for _ in range(3)]
    crashing = instance_factory(mode="observe", config={"crash_at": 1})
    paused = instance_factory(mode="observe")
    reconcile()
    instance_pause(instance=paused, actor=None)
    calls = {"many": [], "single": 0}
    real_many, real_tick = SandboxClient.cycle_many, SandboxClient.tick
    monkeypatch.setattr(
        SandboxClient, "cycle_many", lambda self, t, c: calls["many"].append(len(c)) or real_many(self, t, c)
    )
    monkeypatch.setattr(
        SandboxClient,
        "tick",
        lambda self, *a, **k: calls.__setitem__("single", calls["single"] + 1) or real_tick(self, *a, **k),
    )
    slot = int(time.time())
    outcomes = tick_run_batch([(str(i.pk), slot + 0.001) for i in [*ok, crashing, paused]])
    assert [o.status for o in outcomes] == ["ok", "ok", "ok", "error", "paused"]
    assert calls == {"many": [4], "single": 0}  # one round trip for the four due, loaded ticks
    for inst in ok:
        order = Order.objects.get(instance=inst)  # each placed its own order, under its own id
        assert order.client_order_id == f"{inst.pk}-{slot}-1" and _rt(inst)["state"]["n"] == 1
    assert Run.objects.get(instance=crashing, tick_seq=slot).error_code == "RUNTIME_ERROR"
    assert _rt(crashing)["state"]["n"] == 0 and not Order.objects.filter(instance=crashing).exists()
    assert _rt(paused)["state"]["n"] == 0  # never ran, not even in the host
    # The next slot continues from the persisted states, still in one round trip.
    time.sleep(max(slot + 1.001 - time.time(), 0))
    outcomes = tick_run_batch([(str(i.pk), slot + 1.001) for i in ok])
    assert [o.status for o in outcomes] == ["ok"] * 3 and calls["many"] == [4, 3]
    assert all(_rt(i)["state"]["n"] == 2 for i in ok)


def test_the_dispatcher_process_queues_due_ticks(instance_factory, quote, celery_queue, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.ENGINE_DISPATCH_LOOKAHEAD = 3.0  # a new instance's first slot is up to two seconds away
    inst = instance_factory(mode="observe")
    reconcile()
    out = StringIO()
    call_command("run_dispatcher", "--once", stdout=out)
    assert out.getvalue().strip() == "queued 1 tick(s)"
    first = int(_rt(inst)["queued_slot"])
    assert first == int(_next(inst, -1))
    call_command("run_dispatcher", "--once", stdout=StringIO())
    assert int(_rt(inst)["queued_slot"]) > first  # a later slot, never the same one twice


def test_quiet_ticks_of_a_batch_are_persisted_together_and_before_any_order(
    instance_factory, quote, monkeypatch
):
    """Quiet ticks share one round trip and go first: none waits for an order placed in its batch,
    and an order never waits with unpersisted quiet ticks before it."""
    import time

    from stratbox.engine import events
    from stratbox.engine.ticks import tick as tick_module
    from stratbox.engine.ticks.batch import tick_run_batch

    q1, q2, q3 = (instance_factory(mode="observe", config={"every": 1000}) for _ in range(3))
    orderer = instance_factory(mode="observe")
    reconcile()
    persisted: list[list[str]] = []
    at_order: list[tuple[int, int, int]] = []
    real_end, real_place = runtime.tick_end_many, tick_module.order_place

    def tick_end_many(ends):
        persisted.append([e.iid for e in ends])
        return real_end(ends)

    def order_place(**kwargs):
        at_order.append(tuple(_rt(i)["state_rev"] for i in (q1, q2, q3)))
        return real_place(**kwargs)

    monkeypatch.setattr(runtime, "tick_end_many", tick_end_many)
    monkeypatch.setattr(tick_module, "order_place", order_place)  # the name the tick calls
    slot = int(time.time())
    outcomes = tick_run_batch([(str(i.pk), slot + 0.001) for i in (q1, q2, orderer, q3)])

    assert [o.status for o in outcomes] == ["ok"] * 4
    assert persisted == [[str(q1.pk), str(q2.pk), str(q3.pk)], [str(orderer.pk)]]
    assert at_order == [(1, 1, 1)]  # every quiet tick of the batch was persisted before the order
    r = runtime.r()
    for inst in (q1, q2, q3, orderer):
        rt = _rt(inst)
        assert rt["state"]["n"] == 1 and rt["state_rev"] == 1 and rt["tick_seq"] == slot
        assert r.get(runtime.lock_key(str(inst.pk))) is None  # every lock released
        assert r.hget(runtime.stats_key(str(inst.pk)), "runs") == "1"
        assert int(r.get(events.SEQ_KEY.format(inst.pk)) or 0) >= 1  # its events' seqs reserved
    assert Order.objects.get(instance=orderer).client_order_id == f"{orderer.pk}-{slot}-1"
