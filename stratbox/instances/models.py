"""A strategy instance: a configured, uniquely identifiable deployment of a strategy version.

Identity (id, strategy, account, market) never changes after creation. The strategy *version* it
runs is deployment state, changed only by an audited upgrade (`instances.services.instance_upgrade`).
Config and the capital allocation are mutable and validated; `mode` is the single persisted control
surface.
`paused` is runtime state owned by the engine and is deliberately not stored here.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from stratbox.markets.models import Market
from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import Tenant

IDENTITY_FIELDS = ("id", "strategy", "account", "market")


class Mode(models.TextChoices):
    OFF = "off", "Off"
    OBSERVE = "observe", "Observe"
    ACTIVE = "active", "Active"


class SizingMethod(models.TextChoices):
    FIXED = "fixed", "Fixed"
    KELLY = "kelly", "Kelly (from confidence)"
    PERCENT_CAPITAL = "percent_capital", "Percent of capital"


class TickTrigger(models.TextChoices):
    """What makes an instance tick: its period (`frequency_seconds`), or every quote of its market
    (coalesced: at most one tick in flight, the newest quote wins; see docs/engine.md)."""

    INTERVAL = "interval", "Every N seconds"
    QUOTE = "quote", "On every quote of its market"


class StrategyInstance(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=120)
    # --- immutable identity
    strategy = models.ForeignKey(StrategyDefinition, on_delete=models.PROTECT, related_name="instances")
    # --- deployment: the version of `strategy` it runs (an upgrade changes it, audited)
    version = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="instances")
    # An upgrade with keep_state sets this to the config_revision it produced: the engine's reload to
    # that revision hands the saved state to the new code (`on_load`) instead of running `init()`.
    carry_state_revision = models.PositiveIntegerField(null=True, blank=True)
    # A string reference: trading sits above instances in the layering and imports it, not the reverse.
    account = models.ForeignKey("trading.Account", on_delete=models.PROTECT, related_name="instances")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="instances")
    # --- mutable config (validated against version.config_schema)
    config = models.JSONField(default=dict, blank=True)
    total_capital = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("1000.00"))
    capital_per_trade = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("100.00"))
    max_positions = models.PositiveIntegerField(default=1)
    max_position_size = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("500.00"))
    max_daily_loss = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("100.00"))
    sizing_method = models.CharField(max_length=16, choices=SizingMethod.choices, default=SizingMethod.FIXED)
    frequency_seconds = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    trigger = models.CharField(max_length=8, choices=TickTrigger.choices, default=TickTrigger.INTERVAL)
    # Bumped by every config change that requires a reload; the engine compares it to what it loaded.
    config_revision = models.PositiveIntegerField(default=1)
    # --- the one persisted control surface
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.OFF)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["mode"]), models.Index(fields=["tenant", "mode"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.strategy.key} on {self.market})"
