"""The dry run ("test run"): one cycle now, in a sandbox, with nothing reaching a broker or the
instance's runtime; intents become would-be actions checked read-only against the risk gate."""

from __future__ import annotations

import time
from typing import Any

from stratbox.engine import events, runtime, sandboxes
from stratbox.engine.models import Run, RunStatus, RunTrigger
from stratbox.engine.runs import record_run
from stratbox.engine.ticks.door import host_call, is_signal, strategy_outcome
from stratbox.engine.ticks.failures import error_dict
from stratbox.engine.ticks.inputs import quote_now, tick_from_quote, tick_snapshot
from stratbox.engine.ticks.shaping import action_of
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.trading.risk import InvalidOrder, pre_trade_evaluate, validate_intent


def test_run(instance: StrategyInstance, actor: Any = None) -> tuple[Run, dict[str, Any]]:
    """One cycle now, with the current config, in a sandbox; nothing reaches a broker or the runtime.

    It starts from the instance's current runtime state when it is loaded at the current
    fingerprint (what the next tick would see), otherwise from a fresh `init()`. Intents become
    would-be actions, checked against the risk gate read-only. Returns the recorded run and
    `{"state": ..., "intents": [...], "quote": ...}`.
    """
    iid = str(instance.pk)
    key = f"dry:{iid}"
    tenant_id = str(instance.tenant_id)
    config = instance.config or {}
    mode = instance.mode if instance.mode != Mode.OFF else Mode.OBSERVE
    quote = quote_now(instance)
    quote_source = "feed"
    if not quote:
        price = float(instance.market.sim_start_price)
        spread = float(instance.market.tick_size)
        quote = {
            "market": instance.market.code,
            "price": price,
            "bid": price - spread,
            "ask": price + spread,
            "volume": 0.0,
            "ts": time.time(),
        }
        quote_source = "synthetic"
    tick = tick_from_quote(quote, instance.market.code)
    rt = runtime.rt_get(iid)
    state = None
    if (
        rt
        and rt["loaded"]
        and runtime.desired_applied(rt, instance.version_id, instance.config_revision, config)
    ):
        state = rt.get("state")
    prefix = f"{iid}-dry{int(time.time() * 1000)}"
    started = time.time()
    actions: list[dict[str, Any]] = []
    error = None
    result: dict[str, Any] = {}
    try:
        sandboxes.load(
            tenant_id=tenant_id,
            key=key,
            version=instance.version,
            config=config,
            fingerprint=runtime.fingerprint(instance.version_id, instance.config_revision),
            load_id="dry",
            state=state,
            state_rev=0,
            seed=None,
        )
        snapshot = tick_snapshot(instance, quote, mode, prefix)
        signal = is_signal(instance)
        raw = host_call(instance, key, tick, snapshot, signal)
        # Nothing of a refused reply is used, not even to answer the caller.
        result, intents, skipped = strategy_outcome(instance, raw, snapshot, signal)
        for intent in intents:
            actions.append(_would_be(instance, intent, quote, mode))
        actions.extend(skipped)
    except Exception as exc:
        error = error_dict(exc)
    finally:
        sandboxes.unload(tenant_id, key)
    finished = time.time()
    status = (
        RunStatus.OK
        if error is None
        else (RunStatus.TIMEOUT if error["code"] == "TIMEOUT" else RunStatus.ERROR)
    )
    run = record_run(
        instance=instance,
        trigger=RunTrigger.DRY_RUN,
        status=status,
        seq=None,
        due_at=None,
        started=started,
        finished=finished,
        config=config,
        mode=mode,
        logs=list(result.get("logs") or []),
        actions=actions,
        error=error,
    )
    events.publish(
        tenant_id=instance.tenant_id,
        instance_id=iid,
        kind="run",
        data={
            "run_id": run.pk,
            "trigger": RunTrigger.DRY_RUN,
            "status": status,
            "duration_ms": run.duration_ms,
            "actions": len(actions),
        },
    )
    state_out = result.get("state") if isinstance(result.get("state"), dict) else None
    return run, {"state": state_out, "quote": quote, "quote_source": quote_source, "mode": mode}


def _would_be(
    instance: StrategyInstance, intent: dict[str, Any], quote: dict[str, Any], mode: str
) -> dict[str, Any]:
    """What a real tick would do with this intent, checked read-only (the real gate runs locked)."""
    action = action_of(intent, None) | {"kind": "would_place", "status": "dry_run"}
    try:
        req = validate_intent(instance=instance, intent=intent)
    except InvalidOrder as exc:
        return action | {
            "kind": "would_deny",
            "deny_code": "INVALID_ORDER",
            "message": f"{exc.field}: {exc.message}",
        }
    if mode != Mode.ACTIVE:
        return action | {"kind": "would_shadow", "status": "dry_run"}
    decision = pre_trade_evaluate(instance=instance, order_request=req, quote=quote)
    if decision.deny is not None:
        return action | {"kind": "would_deny", "deny_code": str(decision.deny), "message": decision.message}
    return action
