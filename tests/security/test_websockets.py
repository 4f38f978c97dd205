"""Websockets, generated from `frontend.routing`: B never subscribes to A's instance or backtest.

Every websocket route with a path parameter gets each of A's objects of that kind, with B's token
(header and query string) and B's browser session: the close code is 4404, exactly as for an id
that does not exist, nothing is pushed first, and nothing (a watch, a subscription) is left behind
in Redis. B's tenant socket never hears A's events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from tests.security.conftest import MARKER, Side, redis_fingerprint
from tests.security.routes import PARAM

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Any:
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def ws_routes() -> list[str]:
    from frontend.routing import websocket_urlpatterns

    return [str(p.pattern) for p in websocket_urlpatterns]


def ws_values(side: Side) -> dict[str, list[Any]]:
    o = side.objects
    return {
        "instance_id": [o["instance"].pk, o["active"].pk],
        "backtest_id": [o["backtest"].pk, o["finished_backtest"].pk],
    }


def _token(side: Side) -> str:
    from tenants.services import token_create

    return token_create(tenant=side.tenant, user=side.owner, name="ws").plaintext


def _session_cookie(user: Any, tenant: Any | None = None) -> tuple[bytes, bytes]:
    from tenants.scoping import SESSION_TENANT_KEY

    client = Client()
    client.force_login(user)
    if tenant is not None:
        session = client.session
        session[SESSION_TENANT_KEY] = str(tenant.pk)
        session.save()
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def _close_code(path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    from stratbox.asgi import application

    if not any(name == b"host" for name, _ in headers):
        headers = [*headers, (b"host", b"127.0.0.1")]  # as a browser sends it; the Origin check compares it
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect(timeout=5)
    if not connected:
        return "refused"
    output = await comm.receive_output(timeout=5)
    await comm.disconnect()
    return output["code"] if output["type"] == "websocket.close" else f"pushed {output.get('text', '')[:200]}"


def _run(fn: Any, *args: Any) -> Any:
    from asgiref.sync import async_to_sync

    return async_to_sync(fn)(*args)


def test_b_is_closed_4404_on_every_object_socket_of_a(side_a: Side, side_b: Side) -> None:
    from tests.factories import add_member

    token = _token(side_b)
    # A user in both tenants whose browser session acts in B: B's rules, as in the REST API.
    both = add_member(side_a.tenant, role="member", user=side_b.owner)
    credentials = {
        "B token header": [(b"authorization", f"Bearer {token}".encode())],
        "B session": [ORIGIN, _session_cookie(side_b.owner, side_b.tenant)],
    }
    a_values = ws_values(side_a)
    probes: list[tuple[str, str, str, str]] = []
    for route in ws_routes():
        names = [m["name"] for m in PARAM.finditer(route)]
        if not names:
            continue
        assert all(n in a_values for n in names), f"new websocket parameter in {route}: add A's objects"
        for name in names:
            for value in a_values[name]:
                path = "/" + PARAM.sub(str(value), route)
                missing = "/" + PARAM.sub(str(uuid.uuid4()), route)
                for who, headers in credentials.items():
                    probes.append((who, path, missing, json.dumps([h.decode() for h in headers[0]])))
    assert len(probes) >= 8 and both is not None

    before = redis_fingerprint()

    async def attack() -> list[str]:
        failures = []
        for who, path, missing, _ in probes:
            headers = credentials[who]
            got = await _close_code(path, headers)
            if got != 4404:
                failures.append(f"{who} {path}: {got}")
            if await _close_code(missing, headers) != got:
                failures.append(f"{who} {path}: differs from a missing id")
            # The query-string form of the token too.
            if who == "B token header" and await _close_code(f"{path}?token={token}", []) != 4404:
                failures.append(f"{who} (query) {path}")
        return failures

    failures = _run(attack)
    assert not failures, "\n".join(failures)
    assert redis_fingerprint() == before  # no watch of A's instance, no subscription left behind


def test_b_tenant_socket_never_hears_a(side_a: Side, side_b: Side) -> None:
    from channels.layers import get_channel_layer

    from stratbox.backtests.events import backtest_group
    from stratbox.engine.events import instance_group, tenant_group

    token = _token(side_b)
    a_instance, a_backtest = side_a.objects["instance"], side_a.objects["backtest"]

    async def listen() -> list[dict[str, Any]]:
        from stratbox.asgi import application

        comm = WebsocketCommunicator(
            application, "/ws/tenant/", headers=[(b"authorization", f"Bearer {token}".encode())]
        )
        connected, _ = await comm.connect(timeout=5)
        assert connected
        hello = json.loads((await comm.receive_output(timeout=5))["text"])
        assert hello["kind"] == "hello" and hello.get("tenant_id") == str(side_b.tenant.pk)
        layer = get_channel_layer()
        secret = {"note": f"{MARKER} secret"}
        for group in (
            tenant_group(side_a.tenant.pk),
            instance_group(a_instance.pk),
            backtest_group(a_backtest.pk),
        ):
            await layer.group_send(
                group,
                {
                    "type": "instance.event",
                    "kind": "log",
                    "instance_id": str(a_instance.pk),
                    "data": secret,
                    "seq": 1,
                    "ts": 0.0,
                },
            )
        await layer.group_send(
            tenant_group(side_b.tenant.pk),
            {
                "type": "instance.event",
                "kind": "log",
                "instance_id": str(side_b.objects["instance"].pk),
                "data": {"note": "mine"},
                "seq": 1,
                "ts": 0.0,
            },
        )
        got = []
        while not await comm.receive_nothing(timeout=0.5, interval=0.01):
            got.append(json.loads((await comm.receive_output(timeout=1))["text"]))
        await comm.disconnect()
        return got

    got = _run(listen)
    assert [m.get("data") for m in got if m.get("kind") == "log"] == [{"note": "mine"}]
    assert MARKER not in json.dumps(got)


def test_b_tenant_socket_hears_only_its_own_notifications(side_a: Side, side_b: Side) -> None:
    """The inbox message (kind=notification) of A never reaches B's tenant socket; B's own does."""
    from asgiref.sync import sync_to_async

    from stratbox.notifications.services import inbox_push

    token = _token(side_b)
    a_event, b_event = side_a.objects["notification"], side_b.objects["notification"]

    async def listen() -> list[dict[str, Any]]:
        from stratbox.asgi import application

        comm = WebsocketCommunicator(
            application, "/ws/tenant/", headers=[(b"authorization", f"Bearer {token}".encode())]
        )
        connected, _ = await comm.connect(timeout=5)
        assert connected
        await comm.receive_output(timeout=5)  # hello
        await sync_to_async(inbox_push)(a_event)
        await sync_to_async(inbox_push)(b_event)
        got = []
        while not await comm.receive_nothing(timeout=0.5, interval=0.01):
            got.append(json.loads((await comm.receive_output(timeout=1))["text"]))
        await comm.disconnect()
        return got

    got = _run(listen)
    notes = [m for m in got if m.get("kind") == "notification"]
    assert [(m["id"], m["title"], m["event_type"]) for m in notes] == [
        (b_event.pk, "bravo alert", "plugin_alert")
    ]
    assert MARKER not in json.dumps(got)
