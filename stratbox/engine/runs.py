"""The execution history: which runs are stored (sampling), recording a run, and retention.

Recording: a run is always stored with actions or an error, the first after a load, and one in
`ENGINE_RUN_SAMPLE_EVERY` quiet ones (`keep_run`); its logs are capped (`cap_logs`).

Retention (see docs/engine.md): quiet sampled runs (no actions, no error) are kept
`ENGINE_RUN_RETENTION_QUIET_DAYS`; runs with actions or errors, manual and dry runs
`ENGINE_RUN_RETENTION_DAYS`; and no instance keeps more than `ENGINE_RUN_MAX_PER_INSTANCE` runs.
The counters in `InstanceStats` are never pruned.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from stratbox.engine import conf, runtime
from stratbox.engine.models import Run, RunStatus, RunTrigger
from stratbox.engine.storable import clean_json, clean_text
from stratbox.instances.models import StrategyInstance
from stratbox.rows import mark_saved, row_write


def cap_logs(logs: list[Any]) -> tuple[list[dict[str, Any]], int]:
    max_lines = conf.get("ENGINE_RUN_MAX_LOG_LINES")
    max_chars = conf.get("ENGINE_RUN_MAX_LOG_CHARS")
    clean = [  # clean_text: a NUL in a log line must not fail the run's insert (jsonb refuses it)
        {
            "level": clean_text(str(line.get("level", "info"))[:10]),
            "msg": clean_text(str(line.get("msg", ""))[:max_chars]),
        }
        for line in logs
        if isinstance(line, dict)
    ]
    return clean[:max_lines], max(len(clean) - max_lines, 0)


def keep_run(
    iid: str, trigger: str, actions: list[Any], error: Any, slot: int, freq: int, first: bool
) -> bool:
    """Whether a run is stored: always with actions or an error, the first after a load, and 1 in
    ENGINE_RUN_SAMPLE_EVERY quiet ones. Each instance samples at its own offset (from its id): on a
    common one, every 1-second instance stored its quiet run in the same second of each minute,
    1,000 inserts at once at N = 1,000 instead of ~17 a second."""
    if trigger not in (RunTrigger.SCHEDULED, RunTrigger.QUOTE) or actions or error or first:
        return True
    every = max(conf.get("ENGINE_RUN_SAMPLE_EVERY"), 1)
    return (slot // max(freq, 1) + (uuid.UUID(iid).int >> 32)) % every == 0


def record_run(
    *,
    instance: StrategyInstance,
    trigger: str,
    status: str,
    seq: int | None,
    due_at: float | None,
    started: float,
    finished: float,
    config: dict[str, Any],
    mode: str,
    logs: list[Any],
    actions: list[dict[str, Any]],
    error: dict[str, Any] | None,
    replay: bool = True,
) -> Run:
    """Store the run. `replay=False` (a slot run for the first time, which its claim guarantees):
    a plain insert; otherwise the first attempt may have stored it already (a savepoint catches it)."""
    kept_logs, dropped = cap_logs(logs)
    run = Run(
        tenant_id=instance.tenant_id,
        instance_id=instance.pk,
        trigger=trigger,
        status=status,
        tick_seq=seq,
        due_at=datetime.fromtimestamp(due_at, tz=UTC) if due_at else None,
        started_at=datetime.fromtimestamp(started, tz=UTC),
        finished_at=datetime.fromtimestamp(finished, tz=UTC),
        duration_ms=round((finished - started) * 1000, 3),
        version_id=instance.version_id,
        config_revision=instance.config_revision,
        config_snapshot=config,
        mode=mode,
        logs=kept_logs,
        logs_dropped=dropped,
        actions=clean_json(actions),
        error_code=(error or {}).get("code") or "",
        error_message=clean_text(((error or {}).get("message") or "")[:4000]),
        traceback=clean_text(((error or {}).get("traceback") or "")[:20000]),
        worker=runtime.worker_id(),
    )
    if trigger == RunTrigger.SCHEDULED and not replay:
        # One plain INSERT (`Model.save` cost a tenth of a busy worker's time here).
        sql, values = row_write(run)
        with connection.cursor() as cursor:
            cursor.execute(sql + " RETURNING id", values)
            run.pk = cursor.fetchone()[0]
        mark_saved(run)
    elif trigger == RunTrigger.SCHEDULED:
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            # A replayed slot (crash recovery) whose first attempt already recorded its run.
            run = Run.objects.filter(instance_id=instance.pk, tick_seq=seq, trigger=trigger).first() or run
    else:
        run.save()
    return run


# --- retention ---------------------------------------------------------------------------------


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
