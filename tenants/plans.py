"""Per-plan quotas: how much of the shared platform one tenant may hold at once.

Plans are defined in settings (`STRATBOX_PLANS`, overridable from the environment as JSON); a
tenant's `plan` names one, and an unknown name falls back to `standard`. The services that create
the limited things (instances, backtests) read the tenant's plan here and refuse with a stable code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULT_PLAN = "standard"


@dataclass(frozen=True)
class Plan:
    name: str
    max_instances: int  # instances a tenant may have at once (any mode)
    min_frequency_seconds: int  # the shortest tick period an instance may ask for
    backtests_running: int  # backtests of the tenant that run at the same time; the rest wait
    backtests_queued: int  # backtests queued or running at once; one more is a 429


def plan_get(tenant: Any) -> Plan:
    plans: dict[str, dict[str, Any]] = settings.STRATBOX_PLANS
    name = getattr(tenant, "plan", DEFAULT_PLAN) or DEFAULT_PLAN
    spec = plans.get(name) or plans[DEFAULT_PLAN]
    return Plan(name=name if name in plans else DEFAULT_PLAN, **spec)
