"""Signup at the trading layer: a new tenant starts with a paper account, ready for its first instance.

Tenants sit below trading and cannot create accounts; this adapter extends theirs (settings'
ACCOUNT_ADAPTER points here) so that both happen in the signup's one transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from stratbox.trading.services.accounts import account_create
from tenants.adapters import TenantAccountAdapter
from tenants.selectors import membership_get

DEFAULT_PAPER_BALANCE = Decimal("100000")


class TradingAccountAdapter(TenantAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=commit)
            membership = membership_get(user=user) if commit else None
            if membership is not None:
                account_create(
                    tenant=membership.tenant, actor=user, name="Paper", starting_balance=DEFAULT_PAPER_BALANCE
                )
        return user
