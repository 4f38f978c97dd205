"""The backtest's side of the sandbox boundary: one client per worker process, and the chunk shape.

Everything the host returns is untrusted: :func:`normalize_chunk` checks exact types and
finiteness and turns anything malformed into a ``HOST_CRASHED`` :class:`SandboxError`, so a
hostile strategy cannot plant odd values in our tables or metrics.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from sandbox import ErrorCode, SandboxClient, SandboxError
from stratbox.backtests.models import Backtest

_lock = threading.Lock()
_client: SandboxClient | None = None


def client() -> SandboxClient:
    """The worker process's sandbox client (its pool keeps one host per tenant)."""
    global _client
    with _lock:
        if _client is None:
            _client = SandboxClient()
        return _client


def backtest_load(bt: Backtest, *, tenant_id: str, key: str) -> None:
    version = bt.version
    client().load(
        tenant_id,
        key,
        source=version.source,
        style=bt.style,
        exit_source=version.exit_source or None,
        config=bt.config,
        state=None,
        seed=0,  # deterministic: the same backtest gives the same trades
        fingerprint=f"{bt.version_sha256}:{bt.pk}",
    )


def backtest_unload(*, tenant_id: str, key: str) -> None:
    try:
        client().unload(tenant_id, key)
    except SandboxError:
        pass  # the host may already be gone (that is what failed the run); nothing left to free


def backtest_chunk(
    *, tenant_id: str, key: str, bars: dict[str, list[float]], broker_params: dict[str, Any], market: str
) -> dict[str, Any]:
    """Run one chunk of bars (columns ts/open/high/low/close/volume) through the loaded strategy."""
    raw = client().backtest(tenant_id, key, bars, broker_params, market=market)
    return normalize_chunk(raw)


def _bad(what: str) -> SandboxError:
    return SandboxError(ErrorCode.HOST_CRASHED, f"malformed backtest result: {what}")


def _num(value: object, what: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _bad(what)
    return float(value)  # type: ignore[arg-type]


def normalize_chunk(raw: object) -> dict[str, Any]:
    """Checked chunk result: ``fills`` ([ts, signed qty, price, fee] each), ``trades`` (closed round
    trips), ``position`` (the broker's open position after the chunk) and ``equity`` (its own
    end-of-chunk figure, used as a cross-check)."""
    if not isinstance(raw, dict):
        raise _bad("not an object")
    fills_raw = raw.get("fills")
    if not isinstance(fills_raw, list):
        raise _bad("fills")
    fills: list[tuple[float, float, float, float]] = []
    for f in fills_raw:
        if not isinstance(f, list) or len(f) != 4:
            raise _bad("fill")
        ts, signed, price, fee = (_num(v, "fill value") for v in f)
        if price <= 0 or fee < 0 or signed == 0:  # type: ignore[operator]
            raise _bad("fill value")
        fills.append((ts, signed, price, fee))  # type: ignore[arg-type]
    trades_raw = raw.get("trades", [])
    if not isinstance(trades_raw, list):
        raise _bad("trades")
    trades = []
    for t in trades_raw:
        if not isinstance(t, dict) or t.get("side") not in ("long", "short"):
            raise _bad("trade")
        qty = _num(t.get("qty"), "trade qty")
        if qty <= 0:  # type: ignore[operator]
            raise _bad("trade qty")
        trades.append(
            {
                "side": t["side"],
                "qty": qty,
                "entry_ts": _num(t.get("entry_ts"), "trade entry_ts"),
                "entry_price": _num(t.get("entry_price"), "trade entry_price"),
                "exit_ts": _num(t.get("exit_ts"), "trade exit_ts"),
                "exit_price": _num(t.get("exit_price"), "trade exit_price"),
                "reason": str(t.get("reason") or "")[:200],
            }
        )
    broker = raw.get("broker")
    if not isinstance(broker, dict):
        raise _bad("broker state")
    position = {
        "qty": _num(broker.get("qty", 0.0), "position qty"),
        "avg_price": _num(broker.get("avg_price", 0.0), "position price"),
        "entry_ts": _num(broker.get("entry_ts"), "position entry_ts", allow_none=True),
    }
    summary = raw.get("summary")
    equity = _num(summary.get("equity") if isinstance(summary, dict) else None, "summary equity")
    return {"fills": fills, "trades": trades, "position": position, "equity": equity}
