"""Payload runners shared by the sandbox suite (fixtures live in conftest.py)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from sandbox import SandboxClient, SandboxError

ROOT = Path(__file__).resolve().parents[2]

CATALOG = ROOT / "strategies_store" / "catalog"

LEGIT = """
from sandbox.sdk import Strategy

class Legit(Strategy):
    def init(self):
        return {"n": 0}

    def on_tick(self, tick):
        self.state["n"] += 1
        self.context.place_order("buy", 1.0, tag="legit")
"""

WITNESS = "t-witness"  # the other tenant every hostile case is checked against

TICK = {"market": "BTC-USD", "ts": 1700000000.0, "price": 100.0, "bid": 99.5, "ask": 100.5, "volume": 3.0}


def snapshot(mode: str = "observe", **extra: Any) -> dict[str, Any]:
    snap: dict[str, Any] = {
        "mode": mode,
        "now": 1700000000.0,
        "quote": {"market": "BTC-USD", "price": 100.0, "bid": 99.5, "ask": 100.5, "ts": 1700000000.0},
        "orders": [{"client_order_id": "x-1", "side": "buy", "qty": 1.0, "status": "open"}],
        "position": {
            "market": "BTC-USD",
            "qty": 1.0,
            "avg_price": 90.0,
            "unrealized_pnl": 10.0,
            "realized_pnl": 0.0,
        },
        "positions": [],
        "balance": "1000.50",
        "order_id_prefix": "inst-7",
    }
    snap.update(extra)
    return snap


def strategy(
    on_tick: str = "pass",
    *,
    module: str = "",
    init: str = "return {}",
    render: str | None = None,
    extra: str = "",
) -> str:
    """Build a tick-style strategy with the given method bodies."""

    def body(code: str) -> str:
        return textwrap.indent(textwrap.dedent(code).strip("\n"), " " * 8)

    src = "from sandbox.sdk import Strategy\n" + textwrap.dedent(module).strip("\n") + "\n\n"
    src += "class S(Strategy):\n"
    src += "    def init(self):\n" + body(init) + "\n\n"
    src += "    def on_tick(self, tick):\n" + body(on_tick) + "\n"
    if render is not None:
        src += "\n    def render(self):\n" + body(render) + "\n"
    if extra:
        src += textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ") + "\n"
    return src


class Runner:
    """Runs payloads in a tenant's host and checks that the host keeps serving legitimate work."""

    def __init__(self, client: SandboxClient, tenant: str) -> None:
        self.client = client
        self.tenant = tenant
        self.client.load(tenant, "legit", source=LEGIT, config={}, fingerprint="legit")
        # Another tenant's instance on the same client: a hostile case must not disturb it either.
        self.client.load(WITNESS, "legit", source=LEGIT, config={}, fingerprint="legit")

    def outcome(
        self,
        source: str,
        *,
        mode: str = "observe",
        render: bool = False,
        style: str = "tick",
        exit_source: str | None = None,
        snap: dict[str, Any] | None = None,
    ) -> tuple[SandboxError | None, Any]:
        """Load + one tick (+ render); return (error or None, last result)."""
        iid = f"p-{uuid.uuid4().hex[:8]}"
        result: Any = None
        try:
            result = self.client.load(
                self.tenant, iid, source=source, style=style, exit_source=exit_source, config={}, seed=7
            )
            if style == "tick":
                result = self.client.tick(self.tenant, iid, dict(TICK), snap or snapshot(mode))
                if render:
                    result = self.client.render(self.tenant, iid)
            else:
                result = self.client.signal_cycle(self.tenant, iid, snap or snapshot(mode))
        except SandboxError as exc:
            return exc, result
        finally:
            self.client.unload(self.tenant, iid)
        return None, result

    def expect(self, source: str, code: str, message: str, **kw: Any) -> SandboxError:
        err, result = self.outcome(source, **kw)
        assert err is not None, f"expected {code}, got success: {result!r}"
        assert err.code == code, f"expected {code}, got {err.code}: {err.message}"
        assert message in err.message, f"{message!r} not in {err.message!r}"
        self.assert_healthy()
        return err

    def ok(self, source: str, **kw: Any) -> Any:
        err, result = self.outcome(source, **kw)
        assert err is None, f"unexpected {err.code}: {err.message}\n{err.traceback}"
        self.assert_healthy()
        return result

    def assert_healthy(self) -> None:
        """The next legitimate call of this tenant and of another tenant succeeds (after a respawn if one was needed)."""
        for tenant in (self.tenant, WITNESS):
            before = self.client._specs[(tenant, "legit")].state["n"]  # noqa: SLF001
            res = self.client.tick(tenant, "legit", dict(TICK), snapshot("active"))
            assert res["state"]["n"] == before + 1
            assert res["receipts"][0]["status"] == "submitted"
        assert not list(Path("/tmp").glob("sbx-pwned*")), "a payload wrote to the file system"


def runner_fixture(tenant: str, which: str = "client") -> Any:
    @pytest.fixture(scope="module")
    def _runner(request: pytest.FixtureRequest) -> Runner:
        return Runner(request.getfixturevalue(which), tenant)

    return _runner
