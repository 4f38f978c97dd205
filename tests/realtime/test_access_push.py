"""Websockets end when access ends — pushed by the services after commit, with no client heartbeat.

Token revocation, membership removal, role change and logout each close the affected sockets at
once (the services notify per-user / per-token groups); a heartbeat's re-check also validates the
session. Close codes: 4401 not authenticated, 4403 no tenant any more, 4409 access changed.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from frontend import consumers
from tests.factories import add_member, make_tenant, make_user
from tests.realtime.conftest import ORIGIN, issue_token, open_socket, receive_json, run

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-test-password-1"
CLOSE_WITHIN = 5.0  # seconds; the push arrives in milliseconds, this bounds a loaded machine


def _login_cookie(user: Any) -> tuple[Client, tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return client, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def _closed_code(comm: Any) -> int:
    """The close code the server sends next, skipping nothing else (no heartbeat is ever sent)."""
    output = await comm.receive_output(timeout=CLOSE_WITHIN)
    assert output["type"] == "websocket.close", output
    return int(output["code"])


async def _still_open(comm: Any) -> bool:
    return bool(await comm.receive_nothing(timeout=0.5))


def test_revoking_a_token_closes_its_sockets_without_a_heartbeat(
    instance: Any, user: Any, tenant: Any
) -> None:
    from tenants.models import ApiToken
    from tenants.services import token_revoke

    revoked = issue_token(user, tenant)
    kept = issue_token(user, tenant)

    async def body() -> tuple[int, bool]:
        comm, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=revoked)
        other, _ = await open_socket("/ws/tenant/", token=kept)
        token = await sync_to_async(ApiToken.objects.filter(tenant=tenant).order_by("created_at").first)()
        await sync_to_async(token_revoke)(token=token, actor=user)
        code = await _closed_code(comm)
        still = await _still_open(other)  # the same user's other token is not affected
        await other.disconnect()
        return code, still

    assert run(body) == (4401, True)


def test_removing_a_member_closes_their_session_and_token_sockets(
    instance: Any, tenant: Any, user: Any
) -> None:
    from tenants.models import Membership
    from tenants.services import membership_delete

    member = add_member(tenant, role="member")
    plaintext = issue_token(member, tenant)
    _, cookie = _login_cookie(member)

    async def body() -> list[int]:
        by_token, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=plaintext)
        by_session, _ = await open_socket("/ws/tenant/", headers=[ORIGIN, cookie])
        owner, _ = await open_socket("/ws/tenant/", token=await sync_to_async(issue_token)(user, tenant))
        membership = await sync_to_async(Membership.objects.get)(tenant=tenant, user=member)
        await sync_to_async(membership_delete)(membership=membership, actor=user)
        codes = [await _closed_code(by_token), await _closed_code(by_session)]
        assert await _still_open(owner)
        await owner.disconnect()
        return codes

    # The token died with the membership (4401); the session has no tenant left (4403).
    assert run(body) == [4401, 4403]


def test_a_role_change_closes_the_members_sockets_so_they_reconnect(
    instance: Any, tenant: Any, user: Any
) -> None:
    from tenants.models import Membership
    from tenants.services import membership_set_role

    member = add_member(tenant, role="member")
    _, cookie = _login_cookie(member)

    async def body() -> tuple[int, str]:
        comm, _ = await open_socket(f"/ws/instances/{instance.pk}/", headers=[ORIGIN, cookie])
        membership = await sync_to_async(Membership.objects.get)(tenant=tenant, user=member)
        await sync_to_async(membership_set_role)(membership=membership, actor=user, role="viewer")
        code = await _closed_code(comm)
        again, hello = await open_socket(f"/ws/instances/{instance.pk}/", headers=[ORIGIN, cookie])
        await again.disconnect()
        return code, hello["kind"]

    assert run(body) == (4409, "hello")


def test_logout_closes_that_sessions_sockets_and_not_the_users_others(instance: Any, user: Any) -> None:
    client, cookie = _login_cookie(user)
    _, other_cookie = _login_cookie(user)

    async def body() -> tuple[int, bool]:
        comm, _ = await open_socket("/ws/tenant/", headers=[ORIGIN, cookie])
        other, _ = await open_socket("/ws/tenant/", headers=[ORIGIN, other_cookie])
        response = await sync_to_async(client.post)("/accounts/logout/")
        assert response.status_code == 302
        code = await _closed_code(comm)
        still = await _still_open(other)
        await other.disconnect()
        return code, still

    assert run(body) == (4401, True)


def test_a_heartbeat_re_check_validates_the_session(
    instance: Any, user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session ended without any push (deleted from the store): the next heartbeat closes it."""
    from django.contrib.sessions.models import Session

    monkeypatch.setattr(consumers, "REAUTH_SECONDS", 0.0)
    monkeypatch.setattr(consumers, "HEARTBEAT_MIN_INTERVAL", 0.0)
    _, cookie = _login_cookie(user)
    key = cookie[1].decode().split("=", 1)[1]

    async def body() -> int:
        comm, _ = await open_socket("/ws/tenant/", headers=[ORIGIN, cookie])
        await comm.send_json_to({"type": "heartbeat"})
        assert (await receive_json(comm))["kind"] == "pong"
        await sync_to_async(Session.objects.filter(session_key=key).delete)()
        await comm.send_json_to({"type": "heartbeat"})
        return await _closed_code(comm)

    assert run(body) == 4401


def test_another_tenants_access_change_closes_nothing_here(instance: Any, tenant: Any, user: Any) -> None:
    from tenants.models import Membership
    from tenants.services import membership_delete

    other_owner = make_user("boss@elsewhere.test")
    other = make_tenant("Elsewhere", owner=other_owner)
    stranger = add_member(other, role="member")
    plaintext = issue_token(user, tenant)

    async def body() -> bool:
        comm, _ = await open_socket("/ws/tenant/", token=plaintext)
        membership = await sync_to_async(Membership.objects.get)(tenant=other, user=stranger)
        await sync_to_async(membership_delete)(membership=membership, actor=other_owner)
        still = await _still_open(comm)
        await comm.disconnect()
        return still

    assert run(body) is True
