"""Assume breach: a host fully controlled by its tenant forges its replies; the engine holds.

The hosts here are real processes running the real host code, confined as in production, that
rewrite each reply on its way out (`tests/engine/forged_host.py`); the sandbox client, the engine,
PostgreSQL and Redis are the real ones. Every forged intent must be denied with its code, recorded
(the run's actions, the audit log), leave no order row and no broker effect; every forged reply must
fail its tick with its code, naming the path, and keep the last good state; and after each, the
next legitimate tick of the same instance and a tick of another tenant's instance must succeed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from stratbox.engine import runtime, sandboxes
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.trading.models import Account, Order
from tenants.models import AuditEvent
from tests.conftest import WorkerProcess
from tests.engine.conftest import make_instance, make_version, set_quote, wait_for
from tests.engine.forged_host import FORGE_PRICE, forged_boot

LEGIT = """
from sandbox.sdk import Strategy
# FORGE: {forgery} {arg}


class Buyer(Strategy):
    def init(self):
        return {{"n": 0, "inits": 1}}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.context.log(f"tick {{self.state['n']}}")
        self.context.place_order("buy", 0.01)

    def render(self):
        return {{"widgets": [{{"type": "metric", "label": "n", "value": self.state["n"]}}]}}
"""


@pytest.fixture
def forged_hosts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine's sandbox client starts forged hosts (this test module's only difference)."""
    import sandbox.client

    boot = forged_boot(sandbox.client.BOOT)
    sandboxes.close()
    monkeypatch.setattr(sandbox.client, "BOOT", boot)
    yield
    sandboxes.close()  # later tests get honest hosts again


@pytest.fixture
def rich(tenant: Any, other_tenant: Any) -> None:
    for t in (tenant, other_tenant):
        t.capital_limit = Decimal("1000000")
        t.save(update_fields=["capital_limit"])


@pytest.fixture
def bystander(other_tenant: Any, other_paper_account: Any, market: Any, rich: None) -> Any:
    """Another tenant's honest, active instance (its hosts are the same forged binary, unforged)."""
    version = make_version(other_tenant, LEGIT.format(forgery="none", arg=""), key="bystander")
    return make_instance(version, other_paper_account, market, mode="active")


def _slot(inst: Any) -> int:
    return int(runtime.rt_get(str(inst.pk))["next_due_at"])


def _forged_instance(
    tenant: Any, account: Any, market: Any, forgery: str, arg: str = "", mode: str = "active"
) -> Any:
    version = make_version(
        tenant, LEGIT.format(forgery=forgery, arg=arg), key=f"forged-{uuid.uuid4().hex[:6]}"
    )
    return make_instance(version, account, market, mode=mode)


def _legit_ticks_still_work(inst: Any, bystander: Any, market: Any, slot: int, n_before: int) -> None:
    set_quote(market, 100.0)
    again = tick_run(inst.pk, slot + 1)
    assert again.status == "ok", again.error
    assert [a["kind"] for a in again.actions] == ["order" if inst.mode == "active" else "shadow"]
    assert runtime.rt_get(str(inst.pk))["state"]["n"] == n_before + 1
    order = Order.objects.get(instance=inst)
    assert order.client_order_id == f"{inst.pk}-{slot + 1}-1"
    other = tick_run(bystander.pk, _slot(bystander))
    assert other.status == "ok", other.error
    assert Order.objects.get(instance=bystander).status == "filled"


def _audited(inst: Any) -> list[dict[str, Any]]:
    return [
        e.after
        for e in AuditEvent.objects.filter(
            action="instance.host_reply_refused", target_id=str(inst.pk)
        ).order_by("pk")
    ]


DENIED = [
    ("qty_inf", "INVALID_ORDER", "qty"),
    ("qty_negative", "INVALID_ORDER", "qty"),
    ("qty_zero", "INVALID_ORDER", "qty"),
    ("qty_bool", "INVALID_ORDER", "qty"),
    ("qty_string", "INVALID_ORDER", "qty"),
    ("price_inf", "INVALID_ORDER", "price"),
    ("side_unknown", "INVALID_ORDER", "side"),
    ("type_unknown", "INVALID_ORDER", "type"),
    ("kind_unknown", "INVALID_ORDER", "kind"),
    ("intent_not_object", "INVALID_ORDER", "intents[0]"),
    ("quota", "ORDER_QUOTA_EXCEEDED", "21 order intents"),
    ("coid_foreign", "ORDER_ID_MISMATCH", "client_order_id"),
    ("coid_old_tick", "ORDER_ID_MISMATCH", "client_order_id"),
    ("coid_out_of_range", "ORDER_ID_MISMATCH", "client_order_id"),
    ("intent_status", "MODE_MISMATCH", "status"),
    ("intent_market", "FOREIGN_TARGET", "market"),
    ("intent_account", "FOREIGN_TARGET", "account_id"),
    ("tag_nul", "INVALID_ORDER", "tag"),
    ("tag_surrogate", "INVALID_ORDER", "tag"),
    ("tag_huge", "INVALID_ORDER", "tag"),
]


@pytest.mark.parametrize(("forgery", "code", "names"), DENIED)
def test_a_forged_intent_is_denied_with_its_code_and_recorded(
    forgery, code, names, forged_hosts, tenant, paper_account, market, bystander
):
    arg = str(bystander.pk) if forgery == "coid_foreign" else str(bystander.account_id)
    inst = _forged_instance(tenant, paper_account, market, forgery, arg)
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert out.status == "ok", out.error
    assert [(a["kind"], a["deny_code"]) for a in out.actions] == [("denied", code)]
    assert names in out.actions[0]["message"]
    # Recorded like every denial: the run's actions (the dashboard gets them as action events) ...
    run = Run.objects.get(instance=inst, tick_seq=slot)
    assert run.status == "ok" and [a["deny_code"] for a in run.actions] == [code]
    # ... and audited, as a reply the engine refused to act on.
    assert _audited(inst) == [
        {
            "order_id_prefix": f"{inst.pk}-{slot}",
            "mode": "active",
            "denied": [code],
            "message": out.actions[0]["message"],
        }
    ]
    # Nothing reached the ledger or the broker; the strategy's own state moved on.
    assert not Order.objects.filter(instance=inst).exists()
    assert Account.objects.get(pk=paper_account.pk).balance == Decimal("100000")
    assert runtime.rt_get(str(inst.pk))["state"]["n"] == 1
    _legit_ticks_still_work(inst, bystander, market, slot, n_before=1)


def test_an_observing_instance_whose_host_says_submitted_is_denied(
    forged_hosts, tenant, paper_account, market, bystander
):
    inst = _forged_instance(tenant, paper_account, market, "observe_submitted", mode="observe")
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert [(a["kind"], a["deny_code"]) for a in out.actions] == [("denied", "MODE_MISMATCH")]
    assert "'submitted' while the instance is in observe mode" in out.actions[0]["message"]
    assert not Order.objects.filter(instance=inst).exists()  # not even a shadow order
    assert _audited(inst)[0]["denied"] == ["MODE_MISMATCH"]
    _legit_ticks_still_work(inst, bystander, market, slot, n_before=1)


REFUSED = [
    ("reply_mode", "BAD_OUTPUT", "the tick reply.mode is not a field a host may send"),
    ("reply_snapshot", "BAD_OUTPUT", "the tick reply.snapshot is not a field a host may send"),
    ("intents_not_list", "BAD_OUTPUT", "intents must be a list"),
    ("state_not_object", "BAD_STATE", "state must be an object"),
    ("state_nul", "BAD_STATE", "state.note contains a NUL character"),
    ("state_nul_key", "BAD_STATE", "state has a key that contains a NUL character"),
    ("state_surrogate", "BAD_STATE", "state.s contains a lone surrogate"),
    ("state_inf", "BAD_STATE", "state.x is not a finite number"),
    ("state_deep", "BAD_STATE", "is nested more than 32 levels deep"),
    ("state_huge", "OUTPUT_LIMIT", "state.blob is larger than"),
    ("logs_nul", "BAD_OUTPUT", "logs[0].msg contains a NUL character"),
    ("logs_surrogate", "BAD_OUTPUT", "logs[0].msg contains a lone surrogate"),
    ("logs_not_list", "BAD_OUTPUT", "logs must be a list"),
    ("logs_level", "BAD_OUTPUT", "logs[0].level must be one of"),
    ("logs_flood", "OUTPUT_LIMIT", "logs has more than 100 lines"),
    ("logs_huge", "OUTPUT_LIMIT", "logs[0].msg is longer than 2001 characters"),
    ("receipts_not_list", "BAD_OUTPUT", "receipts must be a list"),
]


@pytest.mark.parametrize(("forgery", "code", "message"), REFUSED)
def test_a_forged_reply_fails_its_tick_with_its_code_and_keeps_the_last_good_state(
    forgery, code, message, forged_hosts, tenant, paper_account, market, bystander
):
    inst = _forged_instance(tenant, paper_account, market, forgery)
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert out.status == "error"
    assert out.error["code"] == code and message in out.error["message"], out.error
    run = Run.objects.get(instance=inst, tick_seq=slot)
    assert run.status == "error" and run.error_code == code and message in run.error_message
    assert _audited(inst)[0]["refused"] == code
    assert not Order.objects.filter(instance=inst).exists()
    assert Account.objects.get(pk=paper_account.pk).balance == Decimal("100000")
    rt = runtime.rt_get(str(inst.pk))
    assert rt["state"] == {"n": 0, "inits": 1}  # the last good state, nothing of the forged one
    assert code in rt["last_error"]["code"]
    _legit_ticks_still_work(inst, bystander, market, slot, n_before=0)


@pytest.mark.parametrize(
    ("forgery", "code", "message"),
    [
        # What the client itself refuses (strict JSON, an object per call); the host is stopped.
        ("nan_literal", "HOST_CRASHED", "malformed reply"),
        ("reply_not_object", "HOST_CRASHED", "malformed on_tick result"),
        # An int Python will not decode: found again on the client's failure path, named by its path.
        ("state_long_int", "BAD_STATE", "state.big is an int of more than 4300 digits"),
        ("qty_long_int", "BAD_OUTPUT", "intents[0].qty is an int of more than 4300 digits"),
    ],
)
def test_a_reply_the_client_cannot_decode_fails_its_tick(
    forgery, code, message, forged_hosts, tenant, paper_account, market, bystander
):
    inst = _forged_instance(tenant, paper_account, market, forgery)
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert out.status == "error" and out.error["code"] == code and message in out.error["message"]
    assert not Order.objects.filter(instance=inst).exists()
    assert runtime.rt_get(str(inst.pk))["state"] == {"n": 0, "inits": 1}
    _legit_ticks_still_work(inst, bystander, market, slot, n_before=0)


def test_a_forged_error_report_is_stored_without_its_nul_and_surrogates(
    forged_hosts, tenant, paper_account, market, bystander
):
    inst = _forged_instance(tenant, paper_account, market, "error_nul")
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert out.status == "error" and out.error["code"] == "RUNTIME_ERROR"
    run = Run.objects.get(instance=inst, tick_seq=slot)
    assert run.error_message == "boom \ufffd and ?"  # storable text, the rest of it intact
    assert run.traceback == 'File "strategy.py", line 3\ufffd?'
    assert runtime.rt_get(str(inst.pk))["last_error"]["line"] is None  # 10**30 is no line number
    _legit_ticks_still_work(inst, bystander, market, slot, n_before=0)


def test_forged_intents_of_a_batch_round_trip_are_denied_too(
    forged_hosts, tenant, paper_account, market, bystander
):
    """Due ticks of one tenant run together in one host round trip (`cycle_many`): same checks."""
    import time

    from stratbox.engine.ticks.batch import tick_run_batch

    forged = _forged_instance(tenant, paper_account, market, "coid_out_of_range")
    honest = _forged_instance(tenant, paper_account, market, "none")
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = int(time.time())
    outcomes = tick_run_batch([(str(forged.pk), slot + 0.001), (str(honest.pk), slot + 0.001)])
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert [a["deny_code"] for a in outcomes[0].actions] == ["ORDER_ID_MISMATCH"]
    assert [a["kind"] for a in outcomes[1].actions] == ["order"]
    assert not Order.objects.filter(instance=forged).exists()
    assert Order.objects.get(instance=honest).client_order_id == f"{honest.pk}-{slot}-1"


# --- signal style -------------------------------------------------------------------------------

ENTRY = """
from sandbox.sdk import EntrySignal
# FORGE: {forgery}


def should_enter(ctx):
    ctx.state["n"] = ctx.state.get("n", 0) + 1
    if ctx.get_positions():
        return []
    return [EntrySignal(ctx.market, "long", "in", 1.0)]
"""

EXIT = """
def should_exit(ctx, position):
    return None
"""


def _bundle(tenant: Any, account: Any, market: Any, forgery: str) -> Any:
    from strategies_store.models import StrategyDefinition, StrategyVersion

    entry = ENTRY.format(forgery=forgery)
    definition = StrategyDefinition.objects.create(
        tenant=tenant, key=f"sig-{uuid.uuid4().hex[:6]}", name="signals", style="signal_bundle", thesis="t"
    )
    version = StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=entry,
        exit_source=EXIT,
        sha256=hashlib.sha256((entry + EXIT).encode()).hexdigest(),
        config_schema={},
    )
    # 10 % of 500 = 50 per entry: within capital_per_trade (100) even at the worst fill price.
    return make_instance(
        version, account, market, mode="active", sizing_method="percent_capital", total_capital=Decimal("500")
    )


@pytest.mark.parametrize(
    ("forgery", "status", "code"),
    [
        ("entry_foreign_market", "ok", "FOREIGN_TARGET"),
        ("entry_confidence_string", "error", "BAD_OUTPUT"),
        ("entries_not_list", "error", "BAD_OUTPUT"),
        ("exit_reason_nul", "error", "BAD_OUTPUT"),
    ],
)
def test_forged_signals_are_refused(forgery, status, code, forged_hosts, tenant, paper_account, market, rich):
    inst = _bundle(tenant, paper_account, market, forgery)
    reconcile()
    set_quote(market, FORGE_PRICE)
    slot = _slot(inst)
    out = tick_run(inst.pk, slot)
    assert out.status == status
    if status == "ok":
        assert [(a["kind"], a["deny_code"]) for a in out.actions] == [("skipped", code)]
    else:
        assert out.error["code"] == code
        assert _audited(inst)[0]["refused"] == code
    assert not Order.objects.filter(instance=inst).exists()
    set_quote(market, 100.0)
    again = tick_run(inst.pk, slot + 1)
    assert again.status == "ok" and [a["kind"] for a in again.actions] == ["order"]
    assert Order.objects.get(instance=inst).status == "filled"


# --- loads and renders --------------------------------------------------------------------------


def test_a_forged_initial_state_is_refused_before_it_reaches_redis_or_postgresql(
    forged_hosts, tenant, paper_account, market
):
    from stratbox.engine.models import InstanceRuntime

    inst = _forged_instance(tenant, paper_account, market, "load_state_nul")
    report = reconcile()
    assert report.failed == {str(inst.pk): "BAD_STATE"}
    rt = runtime.rt_get(str(inst.pk))
    assert rt is None or not rt["loaded"]
    raw = runtime.r().hget(runtime.rt_key(str(inst.pk)), "state")
    assert raw is None or b"\\u0000" not in raw
    assert not InstanceRuntime.objects.filter(instance_id=inst.pk, state__has_key="x").exists()


@pytest.mark.parametrize(
    ("forgery", "message"),
    [
        ("render_nul", "widgets[0].text contains a NUL character"),
        ("render_surrogate_key", "widgets[0] has a key that contains a lone surrogate"),
        ("render_extra_field", "the render reply.state is not a field a host may send"),
    ],
)
def test_forged_widgets_are_refused_before_the_cache_and_the_browser(
    forgery, message, forged_hosts, tenant, paper_account, market
):
    from stratbox.engine.rendering import CACHE_KEY, RenderRefused, render_for_api

    inst = _forged_instance(tenant, paper_account, market, forgery)
    reconcile()
    with pytest.raises(RenderRefused) as refused:  # the API's refusal, with the reply check's code
        render_for_api(inst)
    assert refused.value.code == "BAD_OUTPUT" and message in refused.value.message
    assert runtime.r().get(CACHE_KEY.format(str(inst.pk))) is None


# --- through a real Celery worker ------------------------------------------------------------------


@pytest.mark.worker
def test_a_real_worker_with_forged_hosts_denies_and_refuses_and_keeps_serving(
    celery_queue, transactional_db, tenant, paper_account, market, bystander
):
    """The scheduled path end to end: the Celery task, the worker's own client and forged hosts."""
    import time

    from stratbox.engine.tasks import run_ticks_task

    denied = _forged_instance(tenant, paper_account, market, "coid_foreign", str(bystander.pk))
    refused = _forged_instance(tenant, paper_account, market, "reply_mode")
    everyone = (denied, refused, bystander)
    reconcile()  # the worker loads each instance into its own forged hosts from the runtime state
    set_quote(market, FORGE_PRICE)
    launcher = [str(Path(__file__).resolve().parent / "forged_worker.py")]
    worker = WorkerProcess(
        name=f"forged{uuid.uuid4().hex[:6]}", queue=celery_queue, launcher=launcher
    ).start()

    def ran(slot: int) -> dict[str, Run]:
        runs = {str(r.instance_id): r for r in Run.objects.filter(tick_seq=slot, instance__in=everyone)}
        return runs if len(runs) == 3 else {}

    try:
        slot = int(time.time()) + 1
        run_ticks_task.apply_async(args=[[[str(i.pk), slot] for i in everyone]])
        runs = wait_for(lambda: ran(slot), timeout=60)
        assert [a["deny_code"] for a in runs[str(denied.pk)].actions] == ["ORDER_ID_MISMATCH"]
        assert runs[str(refused.pk)].status == "error" and runs[str(refused.pk)].error_code == "BAD_OUTPUT"
        assert "the tick reply.mode is not a field a host may send" in runs[str(refused.pk)].error_message
        assert [a["kind"] for a in runs[str(bystander.pk)].actions] == ["order"]
        assert not Order.objects.filter(instance__in=[denied, refused]).exists()
        assert Account.objects.get(pk=paper_account.pk).balance == Decimal("100000")
        assert [a["denied"] for a in _audited(denied)] == [["ORDER_ID_MISMATCH"]]
        assert [a["refused"] for a in _audited(refused)] == ["BAD_OUTPUT"]
        set_quote(market, 100.0)
        run_ticks_task.apply_async(args=[[[str(i.pk), slot + 1] for i in everyone]])
        runs = wait_for(lambda: ran(slot + 1), timeout=60)
    finally:
        worker.stop()
    for inst in everyone:
        assert runs[str(inst.pk)].status == "ok" and [a["kind"] for a in runs[str(inst.pk)].actions] == [
            "order"
        ]
        assert Order.objects.filter(instance=inst, status="filled").count() == (2 if inst is bystander else 1)
    assert runtime.rt_get(str(refused.pk))["state"]["n"] == 1  # the forged tick's state never landed


def test_a_test_run_re_checks_the_reply_as_a_tick_does(
    forged_hosts, tenant, paper_account, market, bystander
):
    from stratbox.engine.dry_run import test_run as run_once

    inst = _forged_instance(tenant, paper_account, market, "intent_market")
    set_quote(market, FORGE_PRICE)
    run, out = run_once(inst)
    assert run.status == "ok" and [(a["kind"], a["deny_code"]) for a in run.actions] == [
        ("denied", "FOREIGN_TARGET")
    ]
    forged_state = _forged_instance(tenant, paper_account, market, "state_nul")
    run, out = run_once(forged_state)
    assert run.status == "error" and run.error_code == "BAD_STATE" and "state.note" in run.error_message
    assert out["state"] is None and not Order.objects.filter(instance__in=[inst, forged_state]).exists()
