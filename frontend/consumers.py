"""Websocket consumers: push an instance's, a tenant's or a backtest's events to the dashboard.

Endpoints (routing in `frontend/routing.py`, auth in `frontend/ws_auth.py`):

- `ws/instances/<uuid>/` — one instance (group `instance.<uuid>`); the connection also *watches*
  the instance (`stratbox.engine.watch`) so the engine renders its widgets while it is open.
- `ws/tenant/` — every instance of the caller's tenant (group `tenant.<uuid>`), backtest progress too.
- `ws/backtests/<uuid>/` — one backtest's progress (group `backtest.<uuid>`).

Consumers only push. The single client message is `{"type": "heartbeat"}` (every ~5 s), which
renews the watch and is answered by `{"kind": "pong"}`; everything else is ignored.

Failures are application close codes after the handshake, so every client sees them:
4401 not authenticated (no session, unknown or revoked token), 4403 authenticated but a member
of no tenant, 4404 the instance/backtest is not the caller's tenant's (or does not exist — the
two are indistinguishable on purpose, as in the REST API).

A slow or dead client never slows a worker nor this server's other connections: each web process
subscribes once per group (`frontend.fanout`), and every message is handed to a bounded
per-connection `Outbox` drained by that connection's writer task, so nothing ever waits for a
socket but its own writer. When the outbox is full new events
are dropped and counted (`{"kind": "events_dropped", "count": N}` tells the client to refetch);
log lines are rate limited per connection and replaced by `{"kind": "log_dropped", "count": N}`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from frontend.fanout import hub
from frontend.ws_auth import token_from_scope
from stratbox.backtests.events import backtest_group
from stratbox.backtests.selectors import backtest_get
from stratbox.engine import watch
from stratbox.engine.events import instance_group, tenant_group
from stratbox.instances.selectors import instance_get
from tenants.access_events import MESSAGE_TYPE as ACCESS_CHANGED
from tenants.access_events import token_access_group, user_access_group
from tenants.models import Membership
from tenants.scoping import membership_for_request
from tenants.selectors import token_get_active

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_TENANT = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_ACCESS_CHANGED = 4409
CLOSE_REASONS = {
    CLOSE_UNAUTHENTICATED: "not authenticated",
    CLOSE_NO_TENANT: "not a member of any tenant",
    CLOSE_NOT_FOUND: "not found",
    CLOSE_ACCESS_CHANGED: "access changed: reconnect",
}

HEARTBEAT_SECONDS = 5.0  # what clients are told to use
WATCH_TTL_SECONDS = 15.0  # three missed heartbeats and the watch lapses
HEARTBEAT_MIN_INTERVAL = 1.0  # heartbeats closer together than this are ignored (no Redis call)
REAUTH_SECONDS = 60.0  # a revoked token or a removed member is cut off within this


class Outbox:
    """A bounded, ordered queue of outgoing text frames with drop accounting.

    `offer()` never blocks. Log lines pass a token bucket (`log_rate` per second, `log_burst`
    deep); the ones that do not are counted per instance and reported by one `log_dropped` marker
    at most every `marker_interval` seconds, placed where the lines were dropped. Any event that
    finds the queue full is dropped and counted; the count goes out as `events_dropped` as soon as
    there is room again (log lines count as `log_dropped` instead). Markers may exceed `size` by a
    few frames, never more.
    """

    def __init__(
        self,
        *,
        size: int = 256,
        log_rate: float = 20.0,
        log_burst: int = 50,
        marker_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.log_rate = log_rate
        self.log_burst = float(log_burst)
        self.marker_interval = marker_interval
        self.clock = clock
        self._frames: collections.deque[str] = collections.deque()
        self._wake = asyncio.Event()
        self._tokens = float(log_burst)
        self._refilled_at = clock()
        self._log_dropped: dict[str | None, int] = {}
        self._log_marked_at = float("-inf")
        self._events_dropped = 0
        self.dropped_total = 0  # every frame ever dropped, for stats and tests

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: str) -> None:
        """Enqueue a control frame (hello, pong) — bounded by the same size."""
        if len(self._frames) < self.size:
            self._frames.append(frame)
            self._wake.set()

    def offer(self, frame: str, *, kind: str, instance_id: str | None = None) -> bool:
        """Enqueue an event frame unless rate limit or capacity says no; True if it was queued."""
        now = self.clock()
        if kind == "log":
            self._tokens = min(self.log_burst, self._tokens + (now - self._refilled_at) * self.log_rate)
            self._refilled_at = now
            if self._tokens < 1.0 or len(self._frames) >= self.size:
                self._drop_log(instance_id)
                return False
            self._tokens -= 1.0
            if self._log_dropped and now - self._log_marked_at >= self.marker_interval:
                self._flush_log_markers(now)
        elif len(self._frames) >= self.size:
            self._events_dropped += 1
            self.dropped_total += 1
            self._wake.set()
            return False
        self._flush_events_marker()
        self._frames.append(frame)
        self._wake.set()
        return True

    def _drop_log(self, instance_id: str | None) -> None:
        self._log_dropped[instance_id] = self._log_dropped.get(instance_id, 0) + 1
        self.dropped_total += 1
        self._wake.set()  # the writer arms its marker timer

    def _flush_log_markers(self, now: float) -> None:
        for instance_id, count in self._log_dropped.items():
            marker: dict[str, Any] = {"kind": "log_dropped", "count": count}
            if instance_id is not None:
                marker["instance_id"] = instance_id
            self._frames.append(json.dumps(marker))
        self._log_dropped.clear()
        self._log_marked_at = now

    def _flush_events_marker(self) -> None:
        if self._events_dropped:
            self._frames.append(json.dumps({"kind": "events_dropped", "count": self._events_dropped}))
            self._events_dropped = 0

    async def get(self) -> str:
        """The next frame; waits for one. Pending drop markers go out once the queue drains."""
        while True:
            if self._frames:
                return self._frames.popleft()
            if self._events_dropped:
                self._flush_events_marker()
                continue
            now = self.clock()
            if self._log_dropped and now - self._log_marked_at >= self.marker_interval:
                self._flush_log_markers(now)
                continue
            self._wake.clear()
            timeout = None
            if self._log_dropped:
                timeout = max(0.0, self._log_marked_at + self.marker_interval - now)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass


# --- tenant and object resolution (sync, run through database_sync_to_async) ---------------


def _session_valid(scope: dict[str, Any], user: Any) -> bool:
    """Whether the socket's browser session still exists and still belongs to `user` (a logout,
    or a login as someone else, ends it)."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import SESSION_KEY

    key = getattr(scope.get("session"), "session_key", None)
    if not key:
        return False
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    return bool(store.exists(key)) and str(store.get(SESSION_KEY)) == str(user.pk)


def _membership(scope: dict[str, Any], *, recheck: bool = False) -> tuple[int, Membership | None]:
    """The caller's membership under the same rule as the REST API (token's tenant, else session's).

    `recheck` (a connection already open): the user is read again from the database, the token
    must still be active and a session must still exist."""
    if scope.get("auth_failed"):
        return CLOSE_UNAUTHENTICATED, None
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return CLOSE_UNAUTHENTICATED, None
    if recheck:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
        if user is None:
            return CLOSE_UNAUTHENTICATED, None
        if scope.get("api_token") is not None:
            if token_get_active(plaintext=token_from_scope(scope) or "") is None:
                return CLOSE_UNAUTHENTICATED, None
        elif not _session_valid(scope, user):
            return CLOSE_UNAUTHENTICATED, None
    request = SimpleNamespace(user=user, auth=scope.get("api_token"), session=scope.get("session"))
    membership = membership_for_request(request)  # type: ignore[arg-type]
    if membership is None:
        return CLOSE_NO_TENANT, None
    return 0, membership


class PushConsumer(AsyncWebsocketConsumer):
    """Authenticate, authorise, join groups, then forward group messages through an Outbox."""

    # No layer channel per socket: the process hub (frontend.fanout) holds the group subscriptions
    # and calls `deliver()`; Channels treats an unknown alias as "no channel layer".
    channel_layer_alias = "frontend.fanout"
    kind = "base"
    outbox_size = 256
    log_rate = 20.0
    log_burst = 50

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Outbox(size=self.outbox_size, log_rate=self.log_rate, log_burst=self.log_burst)
        self.writer: asyncio.Task[None] | None = None
        self.membership: Membership | None = None
        self.subscribed = False
        self.authorized_at = 0.0
        self.last_heartbeat = float("-inf")

    # Channels runs `close_old_connections` in a thread before every handler; these handlers touch
    # no database (the connect-time checks use database_sync_to_async, which cleans up itself), and
    # that per-message thread hop would dominate the fan-out latency to hundreds of sockets.
    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- subclass hooks ----------------------------------------------------------------------

    def authorize(self, membership: Membership) -> tuple[int, list[str], dict[str, Any]]:
        """(close code or 0, groups to join, hello fields). Runs in a thread with DB access."""
        raise NotImplementedError

    async def on_subscribed(self) -> None:
        pass

    async def on_heartbeat(self) -> None:
        pass

    async def on_disconnect(self) -> None:
        pass

    # --- lifecycle ---------------------------------------------------------------------------

    @database_sync_to_async
    def _check(self) -> tuple[int, list[str], dict[str, Any]]:
        # A long-lived connection is re-checked in full: token revoked, session ended, user gone.
        code, membership = _membership(self.scope, recheck=self.subscribed)
        if code:
            return code, [], {}
        assert membership is not None
        if self.membership is not None and (
            membership.pk != self.membership.pk or membership.role != self.membership.role
        ):
            return CLOSE_ACCESS_CHANGED, [], {}  # the client reconnects under its new role
        self.membership = membership
        return self.authorize(membership)

    def _access_groups(self) -> list[str]:
        user = self.scope.get("user")
        token = self.scope.get("api_token")
        groups = [user_access_group(user.pk)] if user is not None and user.is_authenticated else []
        return groups + ([token_access_group(token.pk)] if token is not None else [])

    async def _access_changed(self, message: dict[str, Any]) -> None:
        """Pushed by the tenants services after a revoke, removal, role change or logout."""
        if not self.subscribed:
            return
        ended = message.get("session_key")
        if ended and ended == getattr(self.scope.get("session"), "session_key", None):
            code = CLOSE_UNAUTHENTICATED  # this socket's session is being logged out
        else:
            code, _, _ = await self._check()
        if code and self.subscribed:
            self.subscribed = False
            await self.on_disconnect()
            await self.close(code=code, reason=CLOSE_REASONS[code])

    async def connect(self) -> None:
        code, groups, hello = await self._check()
        await self.accept()
        if code:
            await self.close(code=code, reason=CLOSE_REASONS[code])
            return
        self.hub_groups = groups + self._access_groups()
        fanout = hub()
        for group in self.hub_groups:
            await fanout.join(group, self)
        self.subscribed = True
        self.authorized_at = time.monotonic()
        await self.on_subscribed()  # first: a client holding the hello is subscribed *and* watching
        self.writer = asyncio.create_task(self._write_loop())
        self.outbox.put(
            json.dumps(
                {"kind": "hello", "subscription": self.kind, "heartbeat_s": HEARTBEAT_SECONDS, **hello}
            )
        )

    async def _write_loop(self) -> None:
        while True:
            frame = await self.outbox.get()
            await self.send(text_data=frame)

    async def disconnect(self, code: int) -> None:
        if self.writer is not None:
            self.writer.cancel()
        fanout = hub()
        for group in getattr(self, "hub_groups", []):
            await fanout.leave(group, self)
        if self.subscribed:
            self.subscribed = False
            try:
                await self.on_disconnect()
            except Exception:  # cleanup is best effort; the watch expires on its own anyway
                logger.warning("websocket cleanup failed", exc_info=True)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.subscribed or text_data is None or len(text_data) > 1024:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("type") != "heartbeat":
            return
        now = time.monotonic()
        if now - self.last_heartbeat < HEARTBEAT_MIN_INTERVAL:
            return
        self.last_heartbeat = now
        if now - self.authorized_at >= REAUTH_SECONDS:
            code, _, _ = await self._check()
            if code:
                self.subscribed = False
                await self.on_disconnect()
                await self.close(code=code, reason=CLOSE_REASONS[code])
                return
            self.authorized_at = now
        await self.on_heartbeat()
        self.outbox.put(json.dumps({"kind": "pong", "ts": time.time()}))

    # --- group message handlers ----------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """Called by the hub for every group message; never blocks (the outbox is bounded)."""
        if not self.subscribed:
            return
        kind = message.get("type")
        if kind == ACCESS_CHANGED:
            self.access_task = asyncio.ensure_future(self._access_changed(message))
        elif kind == "instance.event":
            self.forward_instance_event(message)
        elif kind == "backtest.progress":
            self.forward_backtest_progress(message)
        elif kind == "notification.event":
            self.forward_notification(message)

    async def instance_event(self, message: dict[str, Any]) -> None:
        self.forward_instance_event(message)

    async def backtest_progress(self, message: dict[str, Any]) -> None:
        self.forward_backtest_progress(message)

    def forward_instance_event(self, message: dict[str, Any]) -> None:
        """An engine event: forwarded without the layer's `type` key.

        The hub hands one deserialised dict to every local consumer of a group, so the encoded
        frame is cached on it: 500 sockets cost one `json.dumps`.
        """
        frame = message.get("__frame")
        if frame is None:
            frame = json.dumps({k: v for k, v in message.items() if k != "type"}, default=str)
            message["__frame"] = frame
        self.outbox.offer(frame, kind=str(message.get("kind", "")), instance_id=message.get("instance_id"))

    async def notification_event(self, message: dict[str, Any]) -> None:
        self.forward_notification(message)

    def forward_notification(self, message: dict[str, Any]) -> None:
        """An inbox item (stratbox.notifications), sent to the tenant group only."""
        frame = message.get("__frame")
        if frame is None:
            body = {k: v for k, v in message.items() if k != "type"}
            frame = json.dumps({"kind": "notification", **body}, default=str)
            message["__frame"] = frame
        self.outbox.offer(frame, kind="notification")

    def forward_backtest_progress(self, message: dict[str, Any]) -> None:
        frame = message.get("__frame")
        if frame is None:
            body = {k: v for k, v in message.items() if k != "type"}
            frame = json.dumps({"kind": "backtest_progress", **body}, default=str)
            message["__frame"] = frame
        self.outbox.offer(frame, kind="backtest_progress")


class InstanceConsumer(PushConsumer):
    """`ws/instances/<uuid>/`: one instance's events; the connection watches the instance."""

    kind = "instance"

    def authorize(self, membership: Membership) -> tuple[int, list[str], dict[str, Any]]:
        instance = instance_get(
            tenant=membership.tenant, instance_id=self.scope["url_route"]["kwargs"]["instance_id"]
        )
        if instance is None:
            return CLOSE_NOT_FOUND, [], {}
        self.instance_id = str(instance.pk)
        return 0, [instance_group(instance.pk)], {"instance_id": self.instance_id}

    async def on_subscribed(self) -> None:
        self.watcher = watch.new_watcher_id()
        await self._touch()

    async def on_heartbeat(self) -> None:
        await self._touch()

    async def on_disconnect(self) -> None:
        await sync_to_async(watch.watch_release, thread_sensitive=False)(self.instance_id, self.watcher)

    async def _touch(self) -> None:
        try:
            await sync_to_async(watch.watch_touch, thread_sensitive=False)(
                self.instance_id, WATCH_TTL_SECONDS, watcher=self.watcher
            )
        except Exception:  # Redis hiccup: the next heartbeat retries; events still flow
            logger.warning("watch_touch failed for %s", self.instance_id, exc_info=True)


class TenantConsumer(PushConsumer):
    """`ws/tenant/`: every event of the caller's tenant."""

    kind = "tenant"
    outbox_size = 512

    def authorize(self, membership: Membership) -> tuple[int, list[str], dict[str, Any]]:
        tenant_id = str(membership.tenant_id)
        return 0, [tenant_group(tenant_id)], {"tenant_id": tenant_id}


class BacktestConsumer(PushConsumer):
    """`ws/backtests/<uuid>/`: one backtest's progress."""

    kind = "backtest"

    def authorize(self, membership: Membership) -> tuple[int, list[str], dict[str, Any]]:
        backtest = backtest_get(
            tenant=membership.tenant, backtest_id=self.scope["url_route"]["kwargs"]["backtest_id"]
        )
        if backtest is None:
            return CLOSE_NOT_FOUND, [], {}
        return 0, [backtest_group(backtest.pk)], {"backtest_id": str(backtest.pk)}


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Every unknown websocket path: the same 4404 as an object that is not the caller's."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason=CLOSE_REASONS[CLOSE_NOT_FOUND])
