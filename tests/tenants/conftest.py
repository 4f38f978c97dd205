"""Fixtures for the tenants suites: role-specific clients of the `tenant` fixture."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import add_member, client_for


@pytest.fixture
def member_user(tenant: Any) -> Any:
    return add_member(tenant, role="member")


@pytest.fixture
def member_client(member_user: Any, tenant: Any) -> Any:
    return client_for(member_user, tenant)


def error_attrs(response: Any) -> list[str | None]:
    """The `attr` of every error in a drf-standardized-errors body."""
    return [error["attr"] for error in response.json()["errors"]]


def error_codes(response: Any) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
