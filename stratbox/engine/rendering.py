"""On-demand rendering (issue 5, point 2): a strategy's `render()` runs only when someone looks.

Two triggers, nothing else:

1. **Watched instances, after a tick.** A websocket on `ws/instances/<uuid>/` registers a watch with
   a heartbeat (`stratbox.engine.watch`). After a batch of ticks the worker asks, in one Redis round
   trip, which of the instances it has just ticked are watched, and renders only those — in the
   same host that ran the tick, so the widgets show exactly the state just persisted. The result is
   published as a `widgets` event (`{"widgets": [...]}`) to the instance's groups after commit.
2. **The API** (`GET /api/v1/instances/{id}/render/`): renders in this process's host for the
   tenant, from the instance's persisted runtime state.

Both share one per-instance rate limit (`ENGINE_RENDER_MIN_INTERVAL`, a Redis `SET NX PX` marker, so
it holds across every worker and web server) and a short-lived cache of the last widgets
(`ENGINE_RENDER_CACHE_TTL`) from which a rate-limited API call is answered. Paused or unloaded
instances render nothing.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from sandbox import SandboxError
from stratbox.engine import conf, events, runtime, sandboxes, watch
from stratbox.engine.lua import lua_source
from stratbox.engine.replies import widgets_reply
from tenants.errors import Conflict

logger = logging.getLogger(__name__)

RATE_KEY = runtime.PREFIX + "render:rl:{}"
CACHE_KEY = runtime.PREFIX + "render:widgets:{}"

_GRANT_LUA = lua_source("render_grant")  # contract at the top of lua/render_grant.lua


class RenderRefused(Conflict):
    """The instance cannot be rendered now, or its `render()` failed (HTTP 409); `code` is UPPER_SNAKE
    (or the sandbox's error code)."""


def _interval_ms() -> int:
    return max(int(conf.get("ENGINE_RENDER_MIN_INTERVAL") * 1000), 0)


def _grant(iids: list[str]) -> set[str]:
    """Which of `iids` may render now (loaded, unpaused, rate limit free) — one round trip."""
    if not iids:
        return set()
    keys: list[str] = []
    for iid in iids:
        keys += [runtime.rt_key(iid), RATE_KEY.format(iid)]
    flags = runtime.r().register_script(_GRANT_LUA)(keys=keys, args=[_interval_ms()])
    return {iid for iid, flag in zip(iids, flags, strict=True) if int(flag)}


def _cache_put(pipe: Any, iid: str, entry: dict[str, Any]) -> None:
    pipe.set(CACHE_KEY.format(iid), runtime.dumps(entry), px=int(conf.get("ENGINE_RENDER_CACHE_TTL") * 1000))


def _cache_get(iid: str) -> dict[str, Any] | None:
    raw = runtime.r().get(CACHE_KEY.format(iid))
    return json.loads(raw) if raw else None


def _render_in_host(tenant_id: str, iid: str, state: dict[str, Any] | None = None) -> list[Any]:
    try:
        result = sandboxes.client().render(tenant_id, iid, state=state)
        # Re-checked before anything reaches Redis or a browser (`replies`).
        return widgets_reply(result, sandboxes.limits())
    except Exception:
        # A failed render may have left the host's copy half-mutated: reload from Redis next time.
        sandboxes.forget(iid)
        raise


def render_watched_after_ticks(instances: dict[str, Any], ticked: list[str]) -> list[str]:
    """Render the watched instances among `ticked` (ticked OK by this process just now) and publish.

    `instances` maps id -> StrategyInstance (the batch's prefetched rows). Returns the ids rendered.
    Costs one Redis round trip when nobody watches any of them.
    """
    if not ticked:
        return []
    watched = watch.watched_instances(ticked)
    if not watched:
        return []
    allowed = _grant([iid for iid in ticked if iid in watched])
    rendered: list[str] = []
    pipe = runtime.r().pipeline(transaction=False)
    for iid in ticked:
        instance = instances.get(iid)
        if iid not in allowed or instance is None:
            continue
        try:
            widgets = _render_in_host(str(instance.tenant_id), iid)
        except Exception as exc:  # the user's render() failed: the tick already succeeded, keep going
            logger.info("render of %s failed: %s", iid, exc)
            continue
        _cache_put(pipe, iid, {"widgets": widgets, "rendered_at": time.time()})
        events.publish(
            tenant_id=instance.tenant_id, instance_id=iid, kind="widgets", data={"widgets": widgets}
        )
        rendered.append(iid)
    if rendered:
        pipe.execute()
    return rendered


def render_for_api(instance: Any) -> dict[str, Any]:
    """`{"widgets": [...], "rendered_at": ts, "cached": bool}` for the API, rate limited per instance.

    `instance` is as `instances.selectors.instance_get` returns it (version, definition, tenant,
    market and account loaded: what a host needs to load it).

    Renders from the persisted runtime state in this process's host for the tenant; within the rate
    limit it answers from the cache (filled by the last render, API or tick). Raises RenderRefused
    (INSTANCE_OFF | NOT_LOADED | PAUSED | RENDER_BUSY, or the sandbox error's code when the user's
    `render()` failed: their error, not ours).
    """
    iid = str(instance.pk)
    if instance.mode == "off":
        raise RenderRefused("INSTANCE_OFF", "The instance is off: nothing is running to render.")
    rt = runtime.rt_get(iid)
    if rt is None or not rt["loaded"]:
        raise RenderRefused("NOT_LOADED", "The instance is not loaded yet.")
    if rt["paused"]:
        raise RenderRefused("PAUSED", "A paused instance renders nothing.")
    if iid not in _grant([iid]):
        # Rate limited: somebody rendered a moment ago. Answer from that render if it is still fresh;
        # a concurrent first render fills the cache within its timeout.
        deadline = time.monotonic() + 0.5
        while True:
            cached = _cache_get(iid)
            if cached is not None:
                return {**cached, "cached": True}
            if time.monotonic() > deadline:
                raise RenderRefused("RENDER_BUSY", "Rendered a moment ago; try again shortly.")
            time.sleep(0.02)
    try:
        sync = sandboxes.ensure_runtime_loaded(instance, rt, iid)
        widgets = _render_in_host(str(instance.tenant_id), iid, state=sync)
    except SandboxError as err:
        raise RenderRefused(str(err.code), f"render() failed: {err.message}"[:1000]) from err
    entry = {"widgets": widgets, "rendered_at": time.time()}
    pipe = runtime.r().pipeline(transaction=False)
    _cache_put(pipe, iid, entry)
    pipe.execute()
    return {**entry, "cached": False}
