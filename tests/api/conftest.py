"""Fixtures for the cross-cutting API convention tests."""

from __future__ import annotations

from typing import Any


def assert_standard_error(
    response: Any, status: int, error_type: str = "client_error"
) -> list[dict[str, Any]]:
    """The one error body of the API (drf-standardized-errors): JSON, a type and a list of errors."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"type", "errors"}, body
    assert body["type"] == error_type
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) == {"code", "detail", "attr"}, error
    return body["errors"]
