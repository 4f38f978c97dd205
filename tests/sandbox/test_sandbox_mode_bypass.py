"""Attack class: mode bypass (orders in observe, forged receipts, faked mode, orders from render/init)."""

from __future__ import annotations

from sbx_support import runner_fixture, strategy

runner = runner_fixture("t-mode")

ORDER = strategy("r = self.context.place_order('buy', 2, tag='t')\nself.state['status'] = r.status")


def test_observe_mode_yields_shadow_receipts(runner) -> None:
    result = runner.ok(ORDER, mode="observe")
    assert result["receipts"] == [{"client_order_id": "inst-7-1", "status": "shadow", "reason": None}]
    assert result["intents"][0] == {
        "kind": "order",
        "client_order_id": "inst-7-1",
        "side": "buy",
        "qty": 2.0,
        "type": "market",
        "price": None,
        "tag": "t",
    }
    assert result["state"]["status"] == "shadow"


def test_active_mode_yields_submitted_receipts(runner) -> None:
    assert runner.ok(ORDER, mode="active")["receipts"][0]["status"] == "submitted"


def test_mode_cannot_be_faked(runner) -> None:
    runner.expect(strategy("self.context.mode = 'active'"), "FORBIDDEN", "cannot modify a TickContext object")


def test_mode_is_reported_not_controlled(runner) -> None:
    assert runner.ok(strategy("self.state['mode'] = self.context.mode"), mode="observe")["state"] == {
        "mode": "observe"
    }


def test_forged_receipt_objects_do_not_become_receipts(runner) -> None:
    src = strategy(
        "from sandbox.sdk import OrderReceipt\nr = OrderReceipt('inst-7-1', 'submitted')\nself.state['s'] = r.status"
    )
    result = runner.ok(src, mode="observe")
    assert result["receipts"] == [] and result["intents"] == []


def test_forged_receipt_dicts_in_state_are_just_state(runner) -> None:
    src = strategy("self.state['receipts'] = [{'client_order_id': 'x', 'status': 'submitted'}]")
    result = runner.ok(src, mode="active")
    assert result["receipts"] == [] and result["intents"] == []


def test_orders_from_render_are_refused(runner) -> None:
    src = strategy(
        render="r = self.context.place_order('buy', 1)\nreturn {'widgets': [{'type': 'text', 'text': r.reason}]}"
    )
    result = runner.ok(src, mode="active", render=True)
    assert result == {"widgets": [{"type": "text", "text": "READ_ONLY_CALL"}]}


def test_orders_from_init_are_refused(runner) -> None:
    src = strategy(init="r = self.context.place_order('buy', 1)\nreturn {'init_status': r.reason}")
    result = runner.ok(src, mode="active")
    assert result["state"] == {"init_status": "READ_ONLY_CALL"} and result["intents"] == []


def test_client_order_ids_come_from_the_engine_prefix(runner) -> None:
    src = strategy("self.context.place_order('buy', 1, tag='inst-9-1')\nself.context.place_order('sell', 1)")
    result = runner.ok(src, mode="active")
    assert [i["client_order_id"] for i in result["intents"]] == ["inst-7-1", "inst-7-2"]


def test_context_from_an_active_tick_is_dead_in_the_next(runner) -> None:
    src = strategy(
        "if self.old is not None:\n    self.old.place_order('buy', 1)\nself.old = self.context",
        init="self.old = None\nreturn {}",
    )
    c, t = runner.client, runner.tenant
    c.load(t, "old", source=src, config={})
    c.tick(t, "old", {"market": "X", "ts": 1.0, "price": 1.0}, {"mode": "active"})
    try:
        c.tick(t, "old", {"market": "X", "ts": 2.0, "price": 1.0}, {"mode": "observe"})
        raise AssertionError("expected RUNTIME_ERROR")
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "code", None) == "RUNTIME_ERROR" and "no longer valid" in exc.message  # type: ignore[attr-defined]
    c.unload(t, "old")
    runner.assert_healthy()
