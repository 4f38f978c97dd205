"""Assertion helpers for the strategy store tests."""

from __future__ import annotations

from typing import Any

STRATEGIES_URL = "/api/v1/strategies/"


def strategy_url(strategy_id: Any) -> str:
    return f"{STRATEGIES_URL}{strategy_id}/"


def versions_url(strategy_id: Any) -> str:
    return f"{STRATEGIES_URL}{strategy_id}/versions/"


def upload_error(resp: Any, *, attr: str, code: str | None = None, status: int = 400) -> dict[str, Any]:
    """Assert a standard validation error naming `attr` (and `code`); return that error item."""
    assert resp.status_code == status, (resp.status_code, resp.content[:2000])
    body = resp.json()
    assert body["type"] == "validation_error", body
    matching = [e for e in body["errors"] if e["attr"] == attr]
    assert matching, f"no error on {attr!r}: {body}"
    if code is not None:
        assert any(e["code"] == code for e in matching), f"no {code} on {attr!r}: {body}"
        return next(e for e in matching if e["code"] == code)
    return matching[0]
