"""The websocket Origin check compares scheme, host and port (a page on another port of the same
host is another origin); an API token is an explicit credential and skips it; unknown paths are 4404."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.realtime.conftest import issue_token, open_socket, refused_code, run

pytestmark = pytest.mark.django_db(transaction=True)


def _cookie(user: Any) -> tuple[bytes, bytes]:
    client = Client()
    client.force_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.mark.parametrize(
    ("origin", "host", "extra", "accepted"),
    [
        ("http://127.0.0.1", "127.0.0.1", [], True),
        ("http://127.0.0.1:8000", "127.0.0.1:8000", [], True),
        ("http://localhost:8000", "localhost:8000", [], True),
        ("http://127.0.0.1:9999", "127.0.0.1:8000", [], False),  # another port of the same host
        ("http://127.0.0.1", "127.0.0.1:8000", [], False),  # port 80 is not 8000
        ("https://127.0.0.1:8000", "127.0.0.1:8000", [], False),  # another scheme (the socket is ws)
        ("http://evil.example", "127.0.0.1", [], False),
        ("http://evil.example", "evil.example", [], False),  # a Host we do not serve
        ("null", "127.0.0.1", [], False),
        (None, "127.0.0.1", [], False),
        ("https://app.example.com", "127.0.0.1", [], True),  # in CSRF_TRUSTED_ORIGINS
        ("https://app.example.com:8443", "127.0.0.1", [], False),  # trusted origins are exact
        ("https://127.0.0.1", "127.0.0.1", [(b"x-forwarded-proto", b"https")], True),  # behind TLS proxy
        ("https://127.0.0.1", "127.0.0.1", [(b"x-forwarded-proto", b"http")], False),
    ],
)
def test_origin_matrix_for_session_sockets(
    user: Any, tenant: Any, settings: Any, origin: str | None, host: str, extra: list, accepted: bool
) -> None:
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    headers = [(b"host", host.encode()), _cookie(user), *extra]
    if origin is not None:
        headers.append((b"origin", origin.encode()))

    async def body() -> int | None:
        if accepted:
            comm, hello = await open_socket("/ws/tenant/", headers=headers)
            await comm.disconnect()
            return 0 if hello["kind"] == "hello" else -1
        return await refused_code("/ws/tenant/", headers=headers)

    assert run(body) == (0 if accepted else None)


def test_a_token_socket_skips_the_origin_check(user: Any, tenant: Any) -> None:
    plaintext = issue_token(user, tenant)

    async def body() -> str:
        comm, hello = await open_socket(
            "/ws/tenant/", token=plaintext, headers=[(b"origin", b"http://127.0.0.1:9999")]
        )
        await comm.disconnect()
        return str(hello["kind"])

    assert run(body) == "hello"


def test_an_unknown_websocket_path_is_4404(user: Any, tenant: Any) -> None:
    plaintext = issue_token(user, tenant)

    async def body() -> list[int | None]:
        return [
            await refused_code("/ws/nope/", token=plaintext),
            await refused_code("/ws/instances/not-a-uuid/", token=plaintext),
        ]

    assert run(body) == [4404, 4404]
