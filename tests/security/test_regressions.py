"""Regressions for what the matrix and the fuzzer found (each fixed outside the engine)."""

from __future__ import annotations

import json
from typing import Any

from tests.security.conftest import Side, a_identifiers, body_text, leaks
from tests.security.routes import project_schema


def test_malformed_backtest_ids_are_404_not_500(side_a: Side, side_b: Side) -> None:
    """`backtest_get` let Django's ValidationError through for a non-UUID id: compare?a=4 was a 500."""
    b = side_b.objects["finished_backtest"].pk
    for query in ({"a": "4", "b": str(b)}, {"a": str(b), "b": "x" * 40}, {"a": "4", "b": "6"}):
        response = side_b.client.get("/api/v1/backtests/compare/", query)
        assert response.status_code == 404, (query, body_text(response)[:300])
        assert response.json()["errors"][0]["code"] == "not_found"
        assert not leaks(body_text(response), a_identifiers(side_a))
    response = side_b.client.post(
        "/api/v1/backtests/",
        {"instance": "not-a-uuid", "start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400 and response.json()["errors"][0]["attr"] == "instance"


def _responses(path: str, method: str) -> dict[str, Any]:
    return project_schema()["paths"][path][method]["responses"]


def test_conflicts_and_marker_prices_are_documented() -> None:
    """The fuzzer's schema-conformance findings: undocumented 409s, a float documented as a decimal."""
    assert "409" in _responses("/api/v1/backtests/{backtest_id}/cancel/", "post")
    for action in ("approve", "reject", "revoke"):
        assert "409" in _responses(f"/api/v1/staff/live-requests/{{request_id}}/{action}/", "post")
    assert "409" in _responses("/api/v1/instances/{instance_id}/live-request/", "post")
    marker = project_schema()["components"]["schemas"]["BacktestMarkerOutput"]["properties"]["price"]
    assert marker["type"] == "number"
    for path, param in (("/api/v1/backtests/", "status"), ("/api/v1/backtests/compare/", "a")):
        ref = _responses(path, "get")["400"]["content"]["application/json"]["schema"]["$ref"]
        component = project_schema()["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert "validation_error" in json.dumps(component), (path, param)
