"""allauth adapter: every signup creates a tenant with the new user as its owner."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from tenants.services import tenant_signup


class TenantAccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        # One transaction: a user without a workspace would be locked out of every tenant-scoped page.
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=commit)
            if commit:
                tenant_signup(user=user)
        return user
