"""Read-only admin views of the engine's history and runtime snapshots."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from stratbox.engine.models import InstanceRuntime, InstanceStats, Run


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(_ReadOnly):
    list_display = (
        "id",
        "instance",
        "trigger",
        "status",
        "started_at",
        "duration_ms",
        "error_code",
        "worker",
    )
    list_filter = ("trigger", "status")
    search_fields = ("instance__id", "instance__name", "error_code")
    raw_id_fields = ("instance", "tenant", "version")
    date_hierarchy = "started_at"


@admin.register(InstanceStats)
class InstanceStatsAdmin(_ReadOnly):
    list_display = ("instance", "runs", "ok", "failed", "skipped", "coalesced", "orders", "last_run_at")
    raw_id_fields = ("instance",)


@admin.register(InstanceRuntime)
class InstanceRuntimeAdmin(_ReadOnly):
    list_display = (
        "instance",
        "fingerprint",
        "state_rev",
        "paused",
        "pause_reason",
        "last_tick_at",
        "updated_at",
    )
    list_filter = ("paused", "pause_reason")
    raw_id_fields = ("instance",)
