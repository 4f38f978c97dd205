"""Governance: graduation policies and live-trading approval requests (seed 002: backtest -> paper -> live).

A `LiveApprovalRequest` names a *paper* instance (whose track record earned it) and one of the
tenant's *live* accounts. Approving it creates a new instance on the live account with the same
code version and config (an instance's account is identity, so it cannot be moved) and binds the
approval to that live instance, its version and `config_hash` (config + capital allocation +
frequency). The risk gate asks `governance.selectors.live_approval_is_current` before every live
order; any change of version or config makes the approval stop matching.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from stratbox.instances.models import StrategyInstance
from stratbox.trading.models import Account
from strategies_store.models import StrategyVersion
from tenants.models import Tenant

# Seed 002's defaults; a tenant without a `GraduationPolicy` row is held to these.
DEFAULT_MIN_TRADES = 20
DEFAULT_MIN_WIN_RATE = Decimal("55.00")  # percent, strictly greater
DEFAULT_MIN_PNL = Decimal("0.00")  # strictly greater: positive P&L
DEFAULT_MAX_DRAWDOWN = Decimal("20.00")  # percent, strictly less


class GraduationPolicy(models.Model):
    """Per-tenant graduation thresholds set by staff (admin). Comparisons: trades >= min_trades,
    win rate > min_win_rate, P&L > min_pnl, max drawdown < max_drawdown."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="graduation_policy")
    min_trades = models.PositiveIntegerField(default=DEFAULT_MIN_TRADES)
    min_win_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=DEFAULT_MIN_WIN_RATE,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="percent; the win rate must be strictly greater",
    )
    min_pnl = models.DecimalField(
        max_digits=18, decimal_places=2, default=DEFAULT_MIN_PNL, help_text="P&L must be strictly greater"
    )
    max_drawdown = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=DEFAULT_MAX_DRAWDOWN,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="percent; the max drawdown must be strictly less",
    )
    note = models.CharField(max_length=300, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "graduation policies"

    def __str__(self) -> str:
        return f"graduation policy of {self.tenant}"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending staff review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    REVOKED = "revoked", "Revoked"


class LiveApprovalRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="live_requests")
    # The paper instance whose track record is the evidence (SET_NULL: the request and its
    # snapshots outlive it, for the audit trail).
    instance = models.ForeignKey(
        StrategyInstance, on_delete=models.SET_NULL, null=True, related_name="live_requests"
    )
    instance_name = models.CharField(max_length=120)
    live_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="live_requests")
    # What is approved: the code version and the config hash, snapshotted at request time.
    version = models.ForeignKey(StrategyVersion, on_delete=models.PROTECT, related_name="+")
    config = models.JSONField(help_text="config + capital allocation + frequency at request time")
    config_hash = models.CharField(max_length=64)
    track_record = models.JSONField(help_text="paper (and shadow) track record at request time")
    criteria = models.JSONField(help_text="the graduation policy applied and each criterion's result")
    note = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True)
    # Set on approval: the instance created on the live account; the approval covers only it.
    live_instance = models.ForeignKey(
        StrategyInstance, on_delete=models.SET_NULL, null=True, blank=True, related_name="live_approvals"
    )
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoke_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            models.Index(fields=["status", "requested_at"]),
            models.Index(fields=["tenant", "-requested_at"]),
            models.Index(fields=["live_instance", "status"]),
        ]
        constraints = [
            # One open request per paper instance: a second one while the first is pending is a 409.
            models.UniqueConstraint(
                fields=["instance"], condition=Q(status="pending"), name="uniq_pending_live_request"
            )
        ]

    def __str__(self) -> str:
        return f"live request {self.instance_name} -> {self.live_account_id} ({self.status})"
