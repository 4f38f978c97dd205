"""The backtest's side of the sandbox boundary: one client per worker process, and the chunk shape.

Everything the host returns is untrusted: :func:`normalize_chunk` checks exact types and
finiteness and turns anything malformed into a ``HOST_CRASHED`` :class:`SandboxError`, so a
hostile strategy cannot plant odd values in our tables or metrics.
"""

from __future__ import annotations

import base64
import math
import os
import re
import signal
import threading
from typing import Any

import numpy as np

from sandbox import ErrorCode, SandboxClient, SandboxError
from stratbox.backtests.models import Backtest
from stratbox.engine.replies import clean_text

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
        config_schema=dict(version.config_schema or {}),  # the stored schema, never the class attribute
    )


def backtest_abort(*, tenant_id: str) -> bool:
    """Kill the tenant's host process in this worker (from another thread than the one waiting on
    it): the chunk call in flight fails at once instead of at its end. Returns whether one was killed.

    Deliberately without the client's lock, which the waiting call holds; the pool entry is only
    read, and the waiting call discards the dead host itself."""

    host = client()._pool.get(tenant_id)  # noqa: SLF001 - see the docstring
    if host is None or not host.alive():
        return False
    try:
        os.killpg(host.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def backtest_unload(*, tenant_id: str, key: str) -> None:
    try:
        client().unload(tenant_id, key)
    except SandboxError:
        pass  # the host may already be gone (that is what failed the run); nothing left to free


def backtest_chunk(
    *,
    tenant_id: str,
    key: str,
    bars: dict[str, bytes],
    broker_params: dict[str, Any],
    market: str,
    settling: bool = False,
) -> dict[str, Any]:
    """Run one chunk of bars (columns ts/open/high/low/close/volume, packed float64) through the
    loaded strategy; the host answers with packed fills and trades (see :func:`normalize_chunk`).
    ``settling``: the chunk ends with a binary market's settlement (a fill at 0 is then valid)."""
    raw = client().backtest(tenant_id, key, bars, broker_params, market=market, packed=True)
    return normalize_chunk(raw, settling=settling)


def _bad(what: str) -> SandboxError:
    return SandboxError(ErrorCode.HOST_CRASHED, f"malformed backtest result: {what}")


def _num(value: object, what: str, *, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _bad(what)
    return float(value)  # type: ignore[arg-type]


def _unpack(value: object, width: int, what: str) -> np.ndarray:
    """A base64 float64 array from the host as a checked ``(rows, width)`` matrix of finite values."""
    if not isinstance(value, str):
        raise _bad(what)
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise _bad(what) from None
    if len(data) % (8 * width):
        raise _bad(what)
    arr = np.frombuffer(data, dtype=np.float64).reshape(-1, width)
    if not np.isfinite(arr).all():
        raise _bad(what)
    return arr


def normalize_chunk(raw: object, *, settling: bool = False) -> dict[str, Any]:
    """Checked chunk result: ``fills`` (an ``(n, 4)`` array of ts, signed qty, price, fee),
    ``trades`` (closed round trips), ``position`` (the broker's open position after the chunk)
    and ``equity`` (its own end-of-chunk figure, used as a cross-check).

    Fills and trades arrive packed (base64 float64): they are checked as whole arrays — finite,
    positive prices and quantities, non-negative fees, a known side — instead of value by value.
    A chunk that ends with a binary settlement (``settling``) may hold a fill at 0 (resolved NO).
    """
    if not isinstance(raw, dict):
        raise _bad("not an object")
    fills = _unpack(raw.get("fills_packed"), 4, "fills")
    bad_price = fills[:, 2] < 0 if settling else fills[:, 2] <= 0
    if fills.size and (bad_price.any() or (fills[:, 3] < 0).any() or (fills[:, 1] == 0).any()):
        raise _bad("fill value")
    packed = _unpack(raw.get("trades_packed"), 7, "trades")
    reasons = raw.get("trade_reasons")
    if not isinstance(reasons, list) or len(reasons) != len(packed):
        raise _bad("trade reasons")
    if packed.size and ((packed[:, 3] <= 0).any() or not np.isin(packed[:, 2], (1.0, -1.0)).all()):
        raise _bad("trade")
    trades = [
        {
            "side": "long" if row[2] > 0 else "short",
            "qty": row[3],
            "entry_ts": row[0],
            "entry_price": row[4],
            "exit_ts": row[1],
            "exit_price": row[5],
            "reason": clean_text(reason, 200),  # storable: no NUL or lone surrogate reaches PostgreSQL
        }
        for row, reason in zip(packed.tolist(), reasons, strict=True)
    ]
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
    timings = raw.get("timings")
    host_timings = (
        {k: float(v) for k, v in timings.items() if k in _TIMINGS and type(v) is float and math.isfinite(v)}
        if isinstance(timings, dict)
        else {}
    )
    return {
        "fills": fills,
        "trades": trades,
        "position": position,
        "equity": equity,
        "host_timings": host_timings,
        "denials": _denials(raw.get("denials")),
    }


_CODE = re.compile(r"^[A-Z][A-Z_]{1,39}$")
MAX_DENIALS = 1000


def _denials(value: object) -> list[dict[str, Any]]:
    """The chunk's denied orders (ts, client_order_id, code, message), checked: a code is an
    UPPER_SNAKE word, texts are storable; anything else makes the reply malformed."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_DENIALS:
        raise _bad("denials")
    out = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("code"), str)
            or not _CODE.match(item["code"])
        ):
            raise _bad("denial")
        out.append(
            {
                "ts": _num(item.get("ts"), "denial ts"),
                "client_order_id": clean_text(str(item.get("client_order_id", "")), 64),
                "code": item["code"],
                "message": clean_text(str(item.get("message", "")), 300),
            }
        )
    return out


_TIMINGS = frozenset({"columns_s", "loop_s", "pack_s"})
