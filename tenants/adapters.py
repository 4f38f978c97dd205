"""allauth adapter: every signup creates a tenant with the new user as its owner."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from tenants.services import tenant_create


class TenantAccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            tenant_create(name=f"{user.email.split('@')[0]}'s workspace", owner=user)
        return user
