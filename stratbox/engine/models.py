"""Execution history (`Run`), rolled-up per-instance counters and PostgreSQL snapshots of runtime state.

The live runtime state lives in Redis (`stratbox.engine.runtime`); `InstanceRuntime` is its
periodic snapshot so that a Redis loss costs at most a few seconds of strategy state.
"""

from __future__ import annotations

from django.db import models

from stratbox.instances.models import StrategyInstance
from strategies_store.models import StrategyVersion
from tenants.models import Tenant


class RunTrigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    QUOTE = "quote", "On a quote"
    MANUAL = "manual", "Manual"
    DRY_RUN = "dry_run", "Test run (dry run)"


class RunStatus(models.TextChoices):
    OK = "ok", "OK"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timeout"
    SKIPPED = "skipped", "Skipped"


class Run(models.Model):
    """One execution of an instance's strategy (a tick, a signal cycle or a test run).

    Stored selectively (see docs/engine.md): every run with actions or an error, every
    manual/dry run, and a sample of the quiet ones; all are counted in `InstanceStats`.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    status = models.CharField(max_length=8, choices=RunStatus.choices)
    tick_seq = models.BigIntegerField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0)
    # Provenance: exactly which code and config produced this run.
    version = models.ForeignKey(StrategyVersion, on_delete=models.SET_NULL, null=True, related_name="+")
    config_revision = models.PositiveIntegerField(default=0)
    config_snapshot = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=8, blank=True)
    logs = models.JSONField(default=list, blank=True)
    logs_dropped = models.PositiveIntegerField(default=0)
    # [{"kind": "order"|"shadow"|"denied"|"would_place", "client_order_id", "side", "qty", "status", "deny_code", ...}]
    actions = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker = models.CharField(max_length=120, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-started_at"]),
            models.Index(fields=["instance", "-started_at"]),
            models.Index(fields=["instance", "status"]),
        ]
        constraints = [
            # A scheduled slot is recorded at most once, even when a tick is replayed after a crash.
            models.UniqueConstraint(
                fields=["instance", "tick_seq"],
                condition=models.Q(trigger="scheduled"),
                name="uniq_run_scheduled_slot",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} {self.instance_id} {self.trigger} {self.status}"


class InstanceStats(models.Model):
    """Counters of every run of an instance, rolled up from Redis (quiet runs are not all stored)."""

    instance = models.OneToOneField(
        StrategyInstance, on_delete=models.CASCADE, primary_key=True, related_name="engine_stats"
    )
    runs = models.BigIntegerField(default=0)
    ok = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    coalesced = models.BigIntegerField(default=0)
    orders = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"stats {self.instance_id}: {self.runs} runs"


class InstanceRuntime(models.Model):
    """The last PostgreSQL snapshot of an instance's Redis runtime state."""

    instance = models.OneToOneField(
        StrategyInstance, on_delete=models.CASCADE, primary_key=True, related_name="engine_runtime"
    )
    fingerprint = models.CharField(max_length=120, blank=True)
    config = models.JSONField(default=dict, blank=True)
    state = models.JSONField(null=True, blank=True)
    state_rev = models.BigIntegerField(default=0)
    tick_seq = models.BigIntegerField(default=0)
    paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=40, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"runtime {self.instance_id} rev {self.state_rev}"


class DiscrepancyKind(models.TextChoices):
    ORDER = "order", "Order state differed (corrected from the venue)"
    ORDER_MISSING = "order_missing", "Order unknown to the venue"
    POSITION = "position", "Position differs"
    BALANCE = "balance", "Cash balance differs"


class VenueDiscrepancy(models.Model):
    """A difference the venue reconciler found between our ledger and a live account's venue, and
    what it did about it (corrected the order, paused the affected instances, or only recorded it)."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(
        "trading.Account", on_delete=models.CASCADE, related_name="venue_discrepancies"
    )
    kind = models.CharField(max_length=16, choices=DiscrepancyKind.choices)
    subject = models.CharField(max_length=128)  # the symbol, currency or client_order_id it is about
    ours = models.JSONField(default=dict)
    theirs = models.JSONField(default=dict)
    action = models.CharField(max_length=300)
    paused_instances = models.JSONField(default=list, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["tenant", "-at"]), models.Index(fields=["account", "-at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: {self.action}"


class ReconcileStatus(models.TextChoices):
    OK = "ok", "In agreement with the venue"
    DISCREPANCIES = "discrepancies", "Discrepancies found"
    ERROR = "error", "The venue could not be read"


class AccountReconcile(models.Model):
    """A live account's last reconcile with its venue (shown on the account page)."""

    account = models.OneToOneField(
        "trading.Account", on_delete=models.CASCADE, primary_key=True, related_name="venue_reconcile"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    last_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReconcileStatus.choices)
    message = models.CharField(max_length=300, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"reconcile {self.account_id}: {self.status}"
