"""A tenant's notification profile as the tick path needs it: its locale and who wants fills.

A tick that fills or is refused asks this once; reading the settings and the fill subscriptions
from PostgreSQL for every fill cost two queries per fill, a sizeable share of a worker's time at
a thousand instances. Each process keeps the profile per tenant with the tenant's generation, a
Redis counter every change of settings or subscriptions bumps after its commit: a change is seen
by the very next fill in every process, for one Redis GET. Redis is never the source of truth:
an unreadable counter reads PostgreSQL, and a cached profile is re-read after `MAX_AGE` anyway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from stratbox.markets.quotes import redis_client
from stratbox.notifications.models import EventType, Level, NotificationSettings, Subscription

logger = logging.getLogger(__name__)

GENERATION_KEY = "sbx:notif:gen:{}"
MAX_AGE = 60.0


@dataclass(frozen=True)
class Profile:
    locale: str
    fills_for_all: bool  # a tenant-wide fill subscription
    fills_for: frozenset[str]  # instances with their own fill subscription

    def wants_fills(self, instance_id: Any) -> bool:
        return self.fills_for_all or str(instance_id) in self.fills_for


_cache: dict[str, tuple[bytes | None, float, Profile]] = {}


def profile_get(tenant_id: Any) -> Profile:
    key = str(tenant_id)
    try:
        generation = redis_client().get(GENERATION_KEY.format(key))
        readable = True
    except Exception:
        generation, readable = None, False
    hit = _cache.get(key)
    now = time.monotonic()
    if readable and hit is not None and hit[0] == generation and now - hit[1] < MAX_AGE:
        return hit[2]
    settings = NotificationSettings.objects.filter(tenant_id=key).only("locale").first()
    wanting = set(
        Subscription.objects.filter(tenant_id=key, event_type=EventType.ORDER_FILLED)
        .exclude(level=Level.OFF)
        .values_list("instance_id", flat=True)
    )
    profile = Profile(
        locale=settings.locale if settings is not None else NotificationSettings(tenant_id=key).locale,
        fills_for_all=None in wanting,
        fills_for=frozenset(str(i) for i in wanting if i is not None),
    )
    if readable:
        _cache[key] = (generation, now, profile)
    return profile


def profile_changed(tenant_id: Any) -> None:
    """Called inside the transaction that changes settings or subscriptions: bumps the generation
    now and again once it commits (a reader between the two may have cached the rows as they were
    before the commit under the first bump; the second makes it read them again)."""
    key = GENERATION_KEY.format(tenant_id)

    def bump() -> None:
        try:
            redis_client().incr(key)
        except Exception:  # the cached profiles expire after MAX_AGE anyway
            logger.warning("notification profile of tenant %s: generation not bumped", tenant_id)

    bump()
    transaction.on_commit(bump)
