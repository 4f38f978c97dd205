"""Accounts (where orders go). Orders, fills and positions are added by the engine work."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from tenants.models import Tenant


class AccountKind(models.TextChoices):
    PAPER = "paper", "Paper (simulated broker)"
    LIVE = "live", "Live (exchange/broker adapter)"


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="accounts")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=8, choices=AccountKind.choices, default=AccountKind.PAPER)
    currency = models.CharField(max_length=8, default="USD")
    starting_balance = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("100000.00"))
    # Cash balance, moved only by the broker when fills happen.
    balance = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("100000.00"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_account_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"
