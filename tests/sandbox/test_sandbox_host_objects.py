"""Attack class: reaching host objects through the context, receipts, ticks and exceptions."""

from __future__ import annotations

import pytest
from sbx_support import runner_fixture, snapshot, strategy

from sandbox import SandboxError

runner = runner_fixture("t-hostobj")

FORBIDDEN = [
    ("context-internals", "x = self.context._rec", '"_rec" is an invalid attribute name'),
    ("context-snapshot", "x = self.context._snap", '"_snap" is an invalid attribute name'),
    ("method-self", "x = self.context.place_order.__self__", '"__self__" is an invalid attribute name'),
    ("getattr-internals", "getattr(self.context, '_snap')", '"_snap" is an invalid attribute name'),
    (
        "receipt-write",
        "r = self.context.place_order('buy', 1)\nr.status = 'submitted'",
        "cannot modify a OrderReceipt object",
    ),
    (
        "receipt-class",
        "r = self.context.place_order('buy', 1)\nx = r.__class__",
        '"__class__" is an invalid attribute name',
    ),
    ("tick-write", "tick.price = 1", "cannot modify a Tick object"),
    ("context-write", "self.context.balance = 10", "cannot modify a TickContext object"),
    (
        "sdk-class-write",
        "from sandbox.sdk import Strategy\nStrategy.on_tick = None",
        "cannot modify class Strategy",
    ),
    (
        "sdk-signal-write",
        "from sandbox.sdk import EntrySignal\nEntrySignal.side = 'long'",
        "cannot modify class EntrySignal",
    ),
    ("function-write", "import statistics\nstatistics.mean.cache = {}", "cannot modify a function object"),
    (
        "stdlib-class-write",
        "import collections\ncollections.Counter.most_common = None",
        "cannot modify class Counter",
    ),
]


@pytest.mark.parametrize(("payload", "message"), [f[1:] for f in FORBIDDEN], ids=[f[0] for f in FORBIDDEN])
def test_host_objects_are_unreachable_or_read_only(runner, payload: str, message: str) -> None:
    runner.expect(strategy(payload), "FORBIDDEN", message)


def test_config_is_read_only(runner) -> None:
    runner.expect(strategy("self.config['x'] = 1"), "RUNTIME_ERROR", "does not support item assignment")


def test_context_cannot_be_replaced(runner) -> None:
    runner.expect(strategy("self.context = None"), "RUNTIME_ERROR", "AttributeError")


def test_context_saved_in_render_is_revoked(runner) -> None:
    src = strategy(
        "if self.saved is not None:\n    self.saved.place_order('buy', 1)",
        init="self.saved = None\nreturn {}",
        render="self.saved = self.context\nreturn {'widgets': []}",
    )
    client, tenant = runner.client, runner.tenant
    client.load(tenant, "saver", source=src, config={})
    client.render(tenant, "saver")
    with pytest.raises(Exception) as info:
        client.tick(tenant, "saver", {"market": "X", "ts": 1.0, "price": 1.0}, snapshot("active"))
    assert info.value.code == "RUNTIME_ERROR" and "context is no longer valid" in info.value.message
    client.unload(tenant, "saver")
    runner.assert_healthy()


def test_context_saved_in_init_is_revoked(runner) -> None:
    src = strategy("self.saved.place_order('buy', 1)", init="self.saved = self.context\nreturn {}")
    runner.expect(src, "RUNTIME_ERROR", "context is no longer valid")


def test_signal_context_saved_between_cycles_is_revoked(client) -> None:
    """A signal ctx kept in a module global acts no more after its cycle (even to log or read state)."""
    entry = (
        "SAVED = []\n"
        "def should_enter(ctx):\n"
        "    if SAVED:\n"
        "        SAVED[0].log('from an old cycle')\n"
        "    SAVED.append(ctx)\n"
        "    return []\n"
    )
    exit_ = "def should_exit(ctx, position):\n    return None\n"
    client.load("t-host-sig", "sig", source=entry, exit_source=exit_, style="signal_bundle", config={})
    assert client.signal_cycle("t-host-sig", "sig", snapshot())["logs"] == []
    with pytest.raises(SandboxError) as err:
        client.signal_cycle("t-host-sig", "sig", snapshot())
    assert err.value.code == "RUNTIME_ERROR" and "context is no longer valid" in err.value.message


def test_tracebacks_show_only_user_frames(runner) -> None:
    err = runner.expect(
        strategy("def helper(x):\n    return 1 / x\nhelper(0)"),
        "RUNTIME_ERROR",
        "ZeroDivisionError: division by zero",
    )
    assert err.traceback is not None
    assert (
        'File "strategy.py"' in err.traceback
        and "sandbox/" not in err.traceback
        and "runtime.py" not in err.traceback
    )
    assert "return 1 / x" in err.traceback and err.line == 10


def test_host_exception_from_context_keeps_host_frames_hidden(runner) -> None:
    err = runner.expect(strategy("self.context.place_order()"), "RUNTIME_ERROR", "TypeError")
    assert err.traceback is not None and "context.py" not in err.traceback


REJECTED = [
    ("nan-qty", "r = self.context.place_order('buy', float('nan'))", "INVALID_QTY"),
    ("inf-qty", "r = self.context.place_order('buy', float('inf'))", "INVALID_QTY"),
    ("negative-qty", "r = self.context.place_order('buy', -1)", "INVALID_QTY"),
    ("zero-qty", "r = self.context.place_order('buy', 0)", "INVALID_QTY"),
    ("bool-qty", "r = self.context.place_order('buy', True)", "INVALID_QTY"),
    ("str-qty", "r = self.context.place_order('buy', '1')", "INVALID_QTY"),
    (
        "lying-float",
        "class Q(float):\n    def __gt__(self, o):\n        return True\nr = self.context.place_order('buy', Q(-5))",
        "INVALID_QTY",
    ),
    (
        "lying-int",
        "class I(int):\n    def __le__(self, o):\n        return False\n    def __gt__(self, o):\n        return False\nr = self.context.place_order('buy', I(-5))",
        "INVALID_QTY",
    ),
    (
        "float-subclass-price",
        "class P(float):\n    pass\nr = self.context.place_order('buy', 1, type='limit', price=P(1.0))",
        "INVALID_PRICE",
    ),
    ("bad-side", "r = self.context.place_order('short', 1)", "INVALID_SIDE"),
    ("bad-type", "r = self.context.place_order('buy', 1, type='trailing_stop')", "INVALID_TYPE"),
    ("stop-without-trigger", "r = self.context.place_order('buy', 1, type='stop')", "INVALID_STOP_PRICE"),
    ("bad-tif", "r = self.context.place_order('buy', 1, tif='gtd')", "INVALID_TIF"),
    ("bad-bracket", "r = self.context.place_order('buy', 1, sl='x%')", "INVALID_BRACKET"),
    ("limit-no-price", "r = self.context.place_order('buy', 1, type='limit')", "INVALID_PRICE"),
    (
        "limit-nan-price",
        "r = self.context.place_order('buy', 1, type='limit', price=float('nan'))",
        "INVALID_PRICE",
    ),
    ("long-tag", "r = self.context.place_order('buy', 1, tag='x' * 100)", "INVALID_TAG"),
    ("nul-tag", "r = self.context.place_order('buy', 1, tag='a' + chr(0))", "INVALID_TAG"),
    ("surrogate-tag", "r = self.context.place_order('buy', 1, tag='a' + chr(0xD800))", "INVALID_TAG"),
    ("huge-int-qty", "r = self.context.place_order('buy', 10 ** 5000)", "INVALID_QTY"),
    (
        "huge-int-price",
        "r = self.context.place_order('buy', 1, type='limit', price=10 ** 400)",
        "INVALID_PRICE",
    ),
    (
        "decimal-nan-qty",
        "import decimal\nr = self.context.place_order('buy', decimal.Decimal('NaN'))",
        "INVALID_QTY",
    ),
    (
        "decimal-inf-price",
        "import decimal\nr = self.context.place_order('buy', 1, type='limit', price=decimal.Decimal('Infinity'))",
        "INVALID_PRICE",
    ),
    (
        "decimal-overflow-qty",
        "import decimal\nr = self.context.place_order('buy', decimal.Decimal('1e400'))",
        "INVALID_QTY",
    ),
    (
        "decimal-underflow-qty",
        "import decimal\nr = self.context.place_order('buy', decimal.Decimal('1e-400'))",
        "INVALID_QTY",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_bad_order_arguments_are_rejected_in_trusted_code(runner, payload: str, reason: str) -> None:
    src = strategy(payload + "\nself.state['status'] = r.status\nself.state['reason'] = r.reason")
    result = runner.ok(src, mode="active")
    assert result["intents"] == []
    assert result["state"] == {"status": "rejected", "reason": reason}
    assert result["receipts"] == [{"client_order_id": None, "status": "rejected", "reason": reason}]


def test_snapshot_copies_do_not_leak_between_calls(runner) -> None:
    src = strategy(
        "orders = self.context.get_orders()\norders.append({'forged': True})\n"
        "orders[0]['qty'] = 999\nself.state['seen'] = len(self.context.get_orders())\n"
        "self.state['qty'] = self.context.get_orders()[0]['qty']"
    )
    result = runner.ok(src)
    assert result["state"] == {"seen": 1, "qty": 1.0}
