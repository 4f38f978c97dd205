"""Push "your access changed" to the websockets of a user or a token, after the change commits.

A websocket's authorisation is checked at connect; access can end later (a token revoked, a
membership removed or its role changed, a logout). The services that end it call
`access_changed_on_commit`, which sends one message to the channel-layer group of the user
(`access.user.<id>`) and of the token (`access.token.<id>`); every socket of that user or token
re-checks its access at once and closes if it lost it — within the layer's latency, without waiting
for the client's next heartbeat.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "access.changed"


def user_access_group(user_id: Any) -> str:
    return f"access.user.{user_id}"


def token_access_group(token_id: Any) -> str:
    return f"access.token.{token_id}"


def access_changed_publish(
    *, user_id: Any = None, token_id: Any = None, reason: str, session_key: str | None = None
) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": MESSAGE_TYPE, "reason": reason, "session_key": session_key}
    groups = [user_access_group(user_id)] if user_id is not None else []
    groups += [token_access_group(token_id)] if token_id is not None else []
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # the layer is down: sockets still re-check at their next heartbeat
            logger.warning("could not push the access change to %s", group, exc_info=True)


def access_changed_on_commit(*, user_id: Any = None, token_id: Any = None, reason: str) -> None:
    transaction.on_commit(lambda: access_changed_publish(user_id=user_id, token_id=token_id, reason=reason))


def on_user_logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    """Django's `user_logged_out`: sent before the session is flushed, so the message names the
    session being ended (its sockets close; the user's other sessions re-check and stay)."""
    if user is None:
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    access_changed_publish(user_id=user.pk, reason="logout", session_key=session_key)
