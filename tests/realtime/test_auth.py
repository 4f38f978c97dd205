"""Who may subscribe to what: sessions, tokens, other tenants, viewers, revoked tokens.

Close codes: 4401 not authenticated, 4403 member of no tenant, 4404 not the caller's tenant's.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from frontend import consumers
from tests.factories import add_member, make_user
from tests.realtime.conftest import (
    ORIGIN,
    drain,
    event,
    group_send,
    issue_token,
    make_backtest,
    open_socket,
    receive_json,
    refused_code,
    run,
)

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user: Any) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


def test_unauthenticated_is_closed_4401_on_every_endpoint(instance: Any) -> None:
    backtest = make_backtest(instance)
    paths = [f"/ws/instances/{instance.pk}/", "/ws/tenant/", f"/ws/backtests/{backtest.pk}/"]

    async def body() -> list[int | None]:
        return [await refused_code(path, headers=[ORIGIN]) for path in paths]

    assert run(body) == [4401, 4401, 4401]


def test_no_origin_and_no_token_is_refused_at_the_handshake(instance: Any) -> None:
    assert run(refused_code, f"/ws/instances/{instance.pk}/") is None


def test_unknown_and_revoked_tokens_are_4401(instance: Any, user: Any, tenant: Any) -> None:
    from tenants.models import ApiToken
    from tenants.services import token_revoke

    plaintext = issue_token(user, tenant)
    token = ApiToken.objects.get(tenant=tenant, name="ws")
    token_revoke(token=token, actor=user)
    path = f"/ws/instances/{instance.pk}/"
    cookie = session_cookie(user)

    async def body() -> list[int | None]:
        return [
            await refused_code(path, token=plaintext),
            await refused_code(path, token=plaintext, query=True),
            await refused_code(path, token="sbx_nope_nope"),
            # A bad token never falls back to a valid session cookie.
            await refused_code(path, token="sbx_nope_nope", headers=[ORIGIN, cookie]),
        ]

    assert run(body) == [4401, 4401, 4401, 4401]


def test_other_tenant_cannot_subscribe_to_an_instance_or_backtest(
    instance: Any, other_instance: Any, token: str, other_token: str
) -> None:
    backtest = make_backtest(instance)

    async def body() -> tuple[list[int | None], list[dict[str, Any]]]:
        codes = [
            await refused_code(f"/ws/instances/{instance.pk}/", token=other_token),
            await refused_code(f"/ws/backtests/{backtest.pk}/", token=other_token),
            await refused_code(f"/ws/instances/{instance.pk}/", token=other_token, query=True),
        ]
        # Tenant B's tenant socket hears B's events only, never A's.
        comm, hello = await open_socket("/ws/tenant/", token=other_token)
        assert hello["tenant_id"] == str(other_instance.tenant_id)
        await group_send(f"tenant.{instance.tenant_id}", event(instance, 1, secret="A"))
        await group_send(f"instance.{instance.pk}", event(instance, 2, secret="A"))
        await group_send(f"tenant.{other_instance.tenant_id}", event(other_instance, 1, mine="B"))
        got = await drain(comm)
        await comm.disconnect()
        return codes, got

    codes, got = run(body)
    assert codes == [4404, 4404, 4404]
    assert [m["data"] for m in got] == [{"mine": "B"}]


def test_unknown_instance_is_4404(token: str, instance: Any) -> None:
    import uuid

    assert run(refused_code, f"/ws/instances/{uuid.uuid4()}/", token=token) == 4404


def test_owner_with_token_subscribes_and_hears_events(instance: Any, token: str) -> None:
    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        comm, hello = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        await group_send(f"instance.{instance.pk}", event(instance, 7, kind="status", mode="observe"))
        message = await receive_json(comm)
        await comm.disconnect()
        return hello, message

    hello, message = run(body)
    assert hello == {
        "kind": "hello",
        "subscription": "instance",
        "heartbeat_s": 5.0,
        "instance_id": str(instance.pk),
    }
    assert message["kind"] == "status" and message["seq"] == 7 and message["data"] == {"mode": "observe"}
    assert message["instance_id"] == str(instance.pk) and "type" not in message


def test_viewer_may_subscribe_with_a_token_or_a_session(instance: Any, tenant: Any) -> None:
    viewer = add_member(tenant, role="viewer")
    plaintext = issue_token(viewer, tenant)
    cookie = session_cookie(viewer)

    async def body() -> list[str]:
        kinds = []
        for kwargs in ({"token": plaintext, "query": True}, {"headers": [ORIGIN, cookie]}):
            comm, hello = await open_socket(f"/ws/instances/{instance.pk}/", **kwargs)
            kinds.append(hello["subscription"])
            await comm.disconnect()
        return kinds

    assert run(body) == ["instance", "instance"]


def test_session_needs_our_origin_and_a_membership(instance: Any, user: Any) -> None:
    cookie = session_cookie(user)
    loner_cookie = session_cookie(make_user("loner@nowhere.test"))

    async def body() -> list[int | None]:
        return [
            await refused_code("/ws/tenant/", headers=[(b"origin", b"https://evil.example"), cookie]),
            await refused_code("/ws/tenant/", headers=[ORIGIN, loner_cookie]),
        ]

    assert run(body) == [None, 4403]


def test_backtest_progress_reaches_its_tenant(instance: Any, token: str) -> None:
    from stratbox.backtests.events import progress_publish

    backtest = make_backtest(instance)
    backtest.bars_done, backtest.bars_total = 50, 200

    async def body() -> tuple[dict[str, Any], dict[str, Any]]:
        comm, _ = await open_socket(f"/ws/backtests/{backtest.pk}/", token=token)
        tenant_comm, _ = await open_socket("/ws/tenant/", token=token)
        from asgiref.sync import sync_to_async

        await sync_to_async(progress_publish, thread_sensitive=False)(backtest)
        got = await receive_json(comm), await receive_json(tenant_comm)
        await comm.disconnect()
        await tenant_comm.disconnect()
        return got

    on_backtest, on_tenant = run(body)
    assert on_backtest == on_tenant
    assert on_backtest["kind"] == "backtest_progress"
    assert on_backtest["backtest_id"] == str(backtest.pk)
    assert (on_backtest["done"], on_backtest["total"]) == (50, 200)


def test_token_revoked_while_connected_is_cut_off_at_a_heartbeat(
    instance: Any, user: Any, tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tenants.models import ApiToken
    from tenants.services import token_revoke

    monkeypatch.setattr(consumers, "REAUTH_SECONDS", 0.0)
    monkeypatch.setattr(consumers, "HEARTBEAT_MIN_INTERVAL", 0.0)
    plaintext = issue_token(user, tenant)

    async def body() -> dict[str, Any]:
        from asgiref.sync import sync_to_async

        comm, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=plaintext)
        await comm.send_json_to({"type": "heartbeat"})
        assert (await receive_json(comm))["kind"] == "pong"  # still valid
        token = await sync_to_async(ApiToken.objects.get)(tenant=tenant, name="ws")
        await sync_to_async(token_revoke)(token=token, actor=user)
        await comm.send_json_to({"type": "heartbeat"})
        return await comm.receive_output(timeout=5)

    output = run(body)
    assert output["type"] == "websocket.close" and output["code"] == 4401


def test_sockets_do_not_accept_writes(instance: Any, token: str) -> None:
    """Anything but a heartbeat is ignored: the socket is push-only and the instance is unchanged."""

    async def body() -> list[dict[str, Any]]:
        comm, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        await comm.send_json_to({"type": "set_mode", "mode": "active"})
        await comm.send_to(text_data="not json")
        got = await drain(comm)
        await comm.disconnect()
        return got

    assert run(body) == []
    instance.refresh_from_db()
    assert instance.mode == "observe"
