"""Engine tunables: a Django setting wins, then an environment variable of the same name, then the default.

The environment fallback exists because worker processes started by tests and benchmarks inherit
the environment but not the test process's in-memory settings overrides. Values are cached per
process and forgotten when Django announces a changed setting (`setting_changed`).
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Consecutive failed ticks that trip the circuit breaker (the instance is paused).
    "ENGINE_CIRCUIT_BREAKER_FAILURES": 5,
    # Per-instance tick lock TTL (seconds). A worker that dies holding it blocks the instance this long.
    "ENGINE_LOCK_TTL": 10.0,
    # A queued slot not started this long after it fell due is considered lost (its worker died);
    # the dispatcher queues the instance again.
    "ENGINE_QUEUED_STALE_SECONDS": 15.0,
    # When the newest slot a worker started for an instance began more than two periods plus this
    # long ago, the cluster is behind: further slots of that instance are coalesced, not queued.
    "ENGINE_QUEUE_GRACE": 1.0,
    # The schedule's resolution: every instance's phase inside its second is a multiple of
    # ENGINE_DISPATCH_INTERVAL (`runtime.phase`), and the dispatcher process (`run_dispatcher`)
    # steps on that wall-clock grid, enqueueing the slots due (or due within
    # ENGINE_DISPATCH_LOOKAHEAD seconds). A tick is thus due exactly when a step takes it, and a
    # batch's ticks are due together. A lookahead queues batches ahead with a Celery ETA at their
    # last due time (it rides out a dispatcher pause, but the worker's ETA timer adds its own
    # latency: p99 ~40 ms even on an idle machine).
    "ENGINE_DISPATCH_LOOKAHEAD": 0.0,
    "ENGINE_DISPATCH_INTERVAL": 0.05,
    # The dispatcher copies the dirty instances' Redis runtime (and the run counters) into
    # PostgreSQL this often: a Redis loss costs at most this much strategy state.
    "ENGINE_SNAPSHOT_SECONDS": 5.0,
    # A tick that starts later than this (or two periods, if longer) after its slot is shed as late
    # (counted as coalesced): under overload the engine keeps latency bounded instead of queueing.
    "ENGINE_MAX_LATENESS": 5.0,
    # Instances per run_ticks task at most (the ticks due at one grid point are split into even
    # batches, so several worker processes share them), and the longest stretch of due times
    # (seconds) one batch may span when the dispatcher takes several grid points at once (it fell
    # behind, or looks ahead): a batch starts at its last member's due time.
    "ENGINE_TICK_BATCH": 60,
    "ENGINE_BATCH_SPAN": 0.02,
    # Keep 1 in N quiet runs (no actions, no error) as Run rows; all are counted in InstanceStats.
    "ENGINE_RUN_SAMPLE_EVERY": 60,
    # Retention (days) of quiet sampled runs and of runs with actions/errors.
    "ENGINE_RUN_RETENTION_QUIET_DAYS": 7,
    "ENGINE_RUN_RETENTION_DAYS": 90,
    # Per-instance cap on stored runs (oldest beyond it are pruned).
    "ENGINE_RUN_MAX_PER_INSTANCE": 5000,
    # Log lines and characters kept per Run.
    "ENGINE_RUN_MAX_LOG_LINES": 50,
    "ENGINE_RUN_MAX_LOG_CHARS": 500,
    # A claimed slot's idempotency key lives this long plus two periods (seconds). It must exceed
    # ENGINE_MAX_LATENESS: a redelivered slot past the lateness bound is shed, claimed or not.
    "ENGINE_CLAIM_TTL": 60,
    # Fault injection for tests only: sleep this long after placing orders, before persisting state.
    "ENGINE_FAILPOINT_SLEEP_AFTER_ORDERS": 0.0,
    # Benchmarks only: 1 = record per-tick and per-order timings in Redis lists (see bench/engine).
    "ENGINE_METRICS": 0,
    # Wall-clock budget of one strategy tick (seconds); passed to the sandbox limits.
    "ENGINE_TICK_TIMEOUT": 0.25,
    # On-demand rendering: at most one render() per instance per this many seconds (ticks of watched
    # instances and API calls together, cluster-wide); API calls inside it get the cached widgets,
    # which live this long.
    "ENGINE_RENDER_MIN_INTERVAL": 0.25,
    "ENGINE_RENDER_CACHE_TTL": 2.0,
    # Quote-triggered instances (`trigger = quote`): two ticks of one instance start at least this
    # many seconds apart, however fast its market quotes (the ticks are coalesced meanwhile: one
    # more follows, with the newest quote).
    "ENGINE_QUOTE_MIN_INTERVAL": 0.2,
}


_cache: dict[str, Any] = {}


def get(name: str) -> Any:
    """The tunable's value; read once per process (a tick asks for several), until a setting changes."""
    try:
        return _cache[name]
    except KeyError:
        pass
    default = DEFAULTS[name]
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name)
        value = default if raw is None else raw
    value = _cache[name] = type(default)(value)
    return value


@receiver(setting_changed)
def _forget_cached(*, setting: str, **_: Any) -> None:
    """`override_settings` and pytest-django's `settings` fixture announce every change."""
    _cache.pop(setting, None)
