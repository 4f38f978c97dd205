"""Small factories shared by the test suites (the fixtures in conftest.py use them too)."""

from __future__ import annotations

import uuid
from typing import Any


def make_user(email: str | None = None, password: str = "a-long-test-password-1", **extra: Any) -> Any:
    from django.contrib.auth import get_user_model

    email = email or f"user-{uuid.uuid4().hex[:8]}@example.test"
    return get_user_model().objects.create_user(username=email, email=email, password=password, **extra)


def make_tenant(name: str = "Acme", owner: Any = None) -> Any:
    from tenants.services import tenant_create

    return tenant_create(name=name, owner=owner or make_user())


def add_member(tenant: Any, role: str = "member", user: Any = None) -> Any:
    from tenants.models import Membership

    user = user or make_user()
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


def client_for(user: Any, tenant: Any, scopes: Any = None) -> Any:
    """An APIClient authenticated with a real Bearer token of `user` in `tenant` (every scope unless
    `scopes` narrows it)."""
    from rest_framework.test import APIClient

    from tenants.scopes import ALL_SCOPES
    from tenants.services import token_create

    issued = token_create(
        tenant=tenant, user=user, name="tests", scopes=ALL_SCOPES if scopes is None else scopes
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client
