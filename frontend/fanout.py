"""Process-local fan-out: one channel-layer subscription per group, however many sockets watch it.

Channels' default model gives every websocket its own layer channel and group membership, so an
event for a group with 500 local sockets is handed out through 500 `receive()` calls (task
creation, lock hand-offs) before any byte is written — about 100 µs of Python per socket, which
caps one web process at a few thousand frames per second. Here each web process subscribes once
per group (`layer.new_channel()` + `group_add`), a pump task receives each message once and hands
it synchronously to every local consumer's bounded outbox; the consumer's writer task does the
socket write. Publishers are unchanged: they `group_send` to `instance.<uuid>` / `tenant.<uuid>`.

Group memberships in channels-redis expire (`group_expiry`, a day by default); the hub renews its
own every `REFRESH_SECONDS`, so a dashboard left open for days keeps receiving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)
REFRESH_SECONDS = 3600.0


class Receiver(Protocol):
    def deliver(self, message: dict[str, Any]) -> None: ...


class _Subscription:
    def __init__(self) -> None:
        self.members: set[Receiver] = set()
        self.channel: str | None = None
        self.ready: asyncio.Task[None] | None = None
        self.pump: asyncio.Task[None] | None = None


class Hub:
    """The fan-out of one event loop (one per web process; tests run a fresh loop each)."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.subs: dict[str, _Subscription] = {}
        self.refresher: asyncio.Task[None] | None = None

    async def join(self, group: str, member: Receiver) -> None:
        sub = self.subs.get(group)
        if sub is None:
            sub = self.subs[group] = _Subscription()
            sub.ready = asyncio.ensure_future(self._subscribe(group, sub))
        sub.members.add(member)
        assert sub.ready is not None
        try:
            await asyncio.shield(sub.ready)
        except Exception:
            sub.members.discard(member)
            if self.subs.get(group) is sub and not sub.members:
                del self.subs[group]
            raise
        if self.refresher is None or self.refresher.done():
            self.refresher = asyncio.ensure_future(self._refresh())

    async def leave(self, group: str, member: Receiver) -> None:
        sub = self.subs.get(group)
        if sub is None:
            return
        sub.members.discard(member)
        if sub.members:
            return
        del self.subs[group]
        if sub.pump is not None:
            sub.pump.cancel()
        if sub.ready is not None and sub.channel is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(sub.ready)
                await self.layer.group_discard(group, sub.channel)

    async def _subscribe(self, group: str, sub: _Subscription) -> None:
        sub.channel = await self.layer.new_channel()
        await self.layer.group_add(group, sub.channel)
        sub.pump = asyncio.ensure_future(self._pump(sub))

    async def _pump(self, sub: _Subscription) -> None:
        assert sub.channel is not None
        while True:
            try:
                message = await self.layer.receive(sub.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer hiccupped: keep the subscription, retry shortly
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # shutting down, not a hiccup
                    raise
                logger.warning("fan-out receive failed", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for member in list(sub.members):
                try:
                    member.deliver(message)
                except Exception:  # one broken socket must not starve the others
                    logger.exception("fan-out delivery failed")

    async def _refresh(self) -> None:
        while self.subs:
            await asyncio.sleep(REFRESH_SECONDS)
            for group, sub in list(self.subs.items()):
                if sub.channel is not None:
                    with contextlib.suppress(Exception):
                        await self.layer.group_add(group, sub.channel)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def hub() -> Hub:
    """This event loop's hub (bound to the current default channel layer)."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    current = _hubs.get(loop)
    if current is None or current.layer is not layer:
        current = _hubs[loop] = Hub(layer)
    return current
