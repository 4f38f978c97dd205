"""The worker process's `SandboxClient` and what its hosts currently hold.

One client per process (rebuilt after a fork). Which instance a host holds, at which fingerprint
and state revision, is only a *cache*: before every tick it is checked against the runtime state
in Redis, and any mismatch (another worker ticked the instance since, the config changed, the host
was respawned) loads the instance again with the persisted state — no `init()` — so any worker can
continue any instance.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from typing import Any

from sandbox import Limits, SandboxClient
from stratbox.engine import conf
from stratbox.engine.replies import load_reply
from strategies_store.models import StrategyVersion

_lock = threading.Lock()
_client: Any = None
_client_pid: int | None = None
# sandbox instance key -> the host key (fingerprint|config hash|state_rev) it holds
_held: dict[str, str] = {}


def client() -> Any:
    global _client, _client_pid
    with _lock:
        if _client is None or _client_pid != os.getpid():
            _held.clear()
            limits = Limits(tick_timeout=conf.get("ENGINE_TICK_TIMEOUT"))
            try:
                _client = SandboxClient(limits=limits)
            except TypeError:  # an interface without a limits argument
                _client = SandboxClient()
            _client_pid = os.getpid()
        return _client


def limits() -> Any:
    """The limits this process's hosts run with (what the engine re-checks their replies against)."""

    return getattr(client(), "limits", None) or Limits()


def close() -> None:
    global _client
    with _lock:
        if _client is not None and _client_pid == os.getpid():
            try:
                _client.close()
            finally:
                _client = None
                _held.clear()


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode(), usedforsecurity=False).hexdigest()[:12]


def host_key(load_id: str, config: dict[str, Any], state_rev: int) -> str:
    return f"{load_id}|{config_hash(config)}|{state_rev}"


# version id -> (source, exit_source). StrategyVersion rows are immutable, so this never goes stale.
_sources: OrderedDict[Any, tuple[str, str]] = OrderedDict()
SOURCES_CACHED = 512


def version_sources(version: Any) -> tuple[str, str]:
    """The version's sources without a query per (re)load: ticks read versions with the sources
    deferred, and a host reloads an instance whenever another process ticked it last."""
    deferred = version.get_deferred_fields()
    if "source" not in deferred and "exit_source" not in deferred:
        return version.source, version.exit_source or ""
    cached = _sources.get(version.pk)
    if cached is None:
        row = StrategyVersion.objects.filter(pk=version.pk).values_list("source", "exit_source").first()
        if row is None:
            raise LookupError(f"strategy version {version.pk} is gone")
        cached = (row[0], row[1] or "")
        _sources[version.pk] = cached
        while len(_sources) > SOURCES_CACHED:
            _sources.popitem(last=False)
    else:
        _sources.move_to_end(version.pk)
    return cached


def style_of(version: Any) -> str:
    return "signal_bundle" if version.definition.style == "signal_bundle" else "tick"


def load(
    *,
    tenant_id: str,
    key: str,
    version: Any,
    config: dict[str, Any],
    fingerprint: str,
    load_id: str,
    state: dict[str, Any] | None,
    state_rev: int,
    seed: int | None = None,
) -> dict[str, Any]:
    """Load into this process's host; `state=None` runs `init()`, otherwise the state is restored."""
    sb = client()
    source, exit_source = version_sources(version)
    result = sb.load(
        tenant_id,
        key,
        source=source,
        style=style_of(version),
        exit_source=exit_source or None,
        config=config,
        state=state,
        seed=seed,
        fingerprint=fingerprint,
        # Always the stored, validated schema: never what the class attribute holds at run time.
        config_schema=dict(version.config_schema or {}),
    )
    load_reply(result, limits())  # the state init() made is persisted: re-checked first
    _held[key] = host_key(load_id, config, state_rev)
    return result


def ensure_loaded(
    *,
    tenant_id: str,
    key: str,
    version: Any,
    config: dict[str, Any],
    fingerprint: str,
    load_id: str,
    state: dict[str, Any] | None,
    state_rev: int,
) -> dict[str, Any] | None:
    """Make the local host hold this load and config; returns the state to send with the next call.

    None: the host already holds exactly revision `state_rev` (or was just loaded with it). A dict:
    the host holds the instance, compiled, at this load and config but at an older or newer state
    revision (another process ticked it since): the caller passes the state with its call and the
    host continues from it — no reload, no recompile.
    """
    wanted = host_key(load_id, config, state_rev)
    sb = client()
    held = _held.get(key)
    if held is not None and sb.is_loaded(tenant_id, key, fingerprint):
        if held == wanted:
            return None
        if state is not None and held.rsplit("|", 1)[0] == wanted.rsplit("|", 1)[0]:
            _held[key] = wanted
            return state
    load(
        tenant_id=tenant_id,
        key=key,
        version=version,
        config=config,
        fingerprint=fingerprint,
        load_id=load_id,
        state=state if state is not None else {},
        state_rev=state_rev,
    )
    return None


def ensure_runtime_loaded(instance: Any, rt: dict[str, Any], key: str) -> dict[str, Any] | None:
    """`ensure_loaded` for an instance at its runtime (Redis) fingerprint, config and state."""
    return ensure_loaded(
        tenant_id=str(instance.tenant_id),
        key=key,
        version=instance.version,
        config=rt.get("config") or instance.config or {},
        fingerprint=rt["fingerprint"],
        load_id=rt.get("load_id") or "",
        state=rt.get("state"),
        state_rev=rt["state_rev"],
    )


def advanced(key: str, load_id: str, config: dict[str, Any], state_rev: int) -> None:
    """After a persisted tick the host's state *is* revision `state_rev`."""
    _held[key] = host_key(load_id, config, state_rev)


def forget(key: str) -> None:
    """The host's copy can no longer be trusted (a failed tick may have half-mutated it)."""
    _held.pop(key, None)


def unload(tenant_id: str, key: str) -> None:
    _held.pop(key, None)
    if _client is None or _client_pid != os.getpid():
        return
    try:
        _client.unload(tenant_id, key)
    except Exception:  # noqa: S110 - not loaded here, or the host is gone: either way it is unloaded
        pass
