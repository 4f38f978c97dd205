"""Who is watching which instance: the registry behind on-demand rendering.

The engine calls a strategy's `render()` only for instances somebody is looking at. A watcher is
one websocket connection (or one API caller) that touches the instance on connect and then on
every heartbeat; a watch that is not renewed within its TTL expires by itself, so a web server that
crashes without running any disconnect code leaves no watcher behind.

Storage (Redis only, shared by every web server and worker): one sorted set per instance,
`sbx:watch:<iid>`, whose members are watcher ids scored by their expiry time. Scores come from the
Redis server's clock (`TIME` inside the scripts), so hosts with skewed clocks still agree on what
has expired. The key itself carries a TTL at its latest expiry, so idle instances cost nothing.

- `watch_touch(iid, ttl=15, watcher=...)` — add or renew a watcher.
- `watch_release(iid, watcher)` — a clean disconnect; returns how many live watchers remain.
- `instance_is_watched(iid)` / `watched_instances(ids)` — the engine's questions; the latter is
  one round trip for any number of ids.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import Any

import redis
from django.conf import settings

from stratbox.engine.lua import lua_source

PREFIX = "sbx:watch:"
DEFAULT_TTL = 15.0
# A caller that does not name itself (e.g. one API render request) shares this watcher id.
ANONYMOUS = "api"

_TOUCH = lua_source("watch_touch")  # contract at the top of lua/watch_touch.lua

_RELEASE = lua_source("watch_release")  # contract at the top of lua/watch_release.lua

_WATCHED = lua_source("watched")  # contract at the top of lua/watched.lua

_local = threading.local()


def _client() -> Any:
    """One client per thread; the pool reconnects after a fork."""
    scripts = getattr(_local, "scripts", None)
    if scripts is None:
        client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
        scripts = (
            client.register_script(_TOUCH),
            client.register_script(_RELEASE),
            client.register_script(_WATCHED),
        )
        _local.scripts = scripts
    return scripts


def watch_key(instance_id: Any) -> str:
    return f"{PREFIX}{instance_id}"


def new_watcher_id() -> str:
    return uuid.uuid4().hex


def watch_touch(instance_id: Any, ttl: float = DEFAULT_TTL, *, watcher: str = ANONYMOUS) -> int:
    """Register or renew `watcher` on the instance for `ttl` seconds; returns the live watcher count."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    touch, _, _ = _client()
    return int(touch(keys=[watch_key(instance_id)], args=[watcher, ttl]))


def watch_release(instance_id: Any, watcher: str = ANONYMOUS) -> int:
    """Drop `watcher` (a clean disconnect); returns how many live watchers remain."""
    _, release, _ = _client()
    return int(release(keys=[watch_key(instance_id)], args=[watcher]))


def instance_is_watched(instance_id: Any) -> bool:
    return bool(watched_instances([instance_id]))


def watched_instances(instance_ids: Iterable[Any]) -> set[str]:
    """The subset of `instance_ids` (as strings) with at least one live watcher — one round trip."""
    ids = [str(i) for i in instance_ids]
    if not ids:
        return set()
    _, _, watched = _client()
    flags = watched(keys=[watch_key(i) for i in ids])
    return {iid for iid, flag in zip(ids, flags, strict=True) if int(flag)}
