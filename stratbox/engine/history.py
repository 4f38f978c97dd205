"""Retention of the execution history (see docs/engine.md).

Quiet sampled runs (no actions, no error) are kept `ENGINE_RUN_RETENTION_QUIET_DAYS`; runs with
actions or errors, manual and dry runs `ENGINE_RUN_RETENTION_DAYS`; and no instance keeps more
than `ENGINE_RUN_MAX_PER_INSTANCE` runs. The counters in `InstanceStats` are never pruned.
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from stratbox.engine import conf
from stratbox.engine.models import Run, RunStatus, RunTrigger


def _quiet() -> Q:
    return Q(trigger=RunTrigger.SCHEDULED, status__in=[RunStatus.OK, RunStatus.SKIPPED], actions=[])


def runs_prune(now=None) -> int:  # type: ignore[no-untyped-def]
    now = now or timezone.now()
    deleted = 0
    quiet_cut = now - timedelta(days=conf.get("ENGINE_RUN_RETENTION_QUIET_DAYS"))
    all_cut = now - timedelta(days=conf.get("ENGINE_RUN_RETENTION_DAYS"))
    deleted += Run.objects.filter(_quiet(), started_at__lt=quiet_cut).delete()[0]
    deleted += Run.objects.filter(started_at__lt=all_cut).delete()[0]
    cap = conf.get("ENGINE_RUN_MAX_PER_INSTANCE")
    over = Run.objects.values("instance_id").annotate(n=Count("id")).filter(n__gt=cap)
    for row in over:
        keep_from = (
            Run.objects.filter(instance_id=row["instance_id"])
            .order_by("-started_at", "-id")
            .values_list("started_at", flat=True)[cap - 1]
        )
        deleted += Run.objects.filter(instance_id=row["instance_id"], started_at__lt=keep_from).delete()[0]
    return deleted
