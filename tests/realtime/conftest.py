"""Fixtures of the realtime suites: instances and backtests of two tenants, tokens, a websocket client.

Everything runs against the real `stratbox.asgi.application` and the real channels-redis layer
(the test REDIS_URL's database). Async bodies run under `async_to_sync`, so no pytest plugin is
needed; each test gets a fresh channel-layer object (the layer binds its receive loop to the event
loop that first receives, and every test body runs on a new loop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = Path(__file__).with_name("publisher.py")
ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def make_instance(tenant: Any, account: Any, market: Any) -> Any:
    from stratbox.instances.models import StrategyInstance
    from strategies_store.models import StrategyDefinition, StrategyVersion

    key = f"rt-{uuid.uuid4().hex[:8]}"
    definition = StrategyDefinition.objects.create(tenant=tenant, key=key, name=key)
    version = StrategyVersion.objects.create(
        definition=definition, number=1, source="x = 1", sha256=uuid.uuid4().hex
    )
    return StrategyInstance.objects.create(
        tenant=tenant,
        name=key,
        strategy=definition,
        version=version,
        account=account,
        market=market,
        mode="observe",
        total_capital=Decimal("1000"),
        capital_per_trade=Decimal("100"),
        max_positions=1,
        max_position_size=Decimal("1"),
        max_daily_loss=Decimal("100"),
    )


def make_backtest(instance: Any) -> Any:
    from stratbox.backtests.models import Backtest

    return Backtest.objects.create(
        tenant=instance.tenant,
        version=instance.version,
        version_sha256=instance.version.sha256,
        strategy_key=instance.strategy.key,
        style="tick",
        source="bars",
        market=instance.market,
    )


def issue_token(user: Any, tenant: Any) -> str:
    from tenants.services import token_create

    return token_create(tenant=tenant, user=user, name="ws").plaintext


@pytest.fixture
def instance(transactional_db: None, tenant: Any, paper_account: Any, market: Any) -> Any:
    return make_instance(tenant, paper_account, market)


@pytest.fixture
def other_instance(transactional_db: None, other_tenant: Any, other_paper_account: Any, market: Any) -> Any:
    return make_instance(other_tenant, other_paper_account, market)


@pytest.fixture
def token(transactional_db: None, user: Any, tenant: Any) -> str:
    return issue_token(user, tenant)


@pytest.fixture
def other_token(transactional_db: None, other_user: Any, other_tenant: Any) -> str:
    return issue_token(other_user, other_tenant)


def run(coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an async test body on a fresh event loop (and the DB calls on this thread)."""
    from asgiref.sync import async_to_sync

    return async_to_sync(coro_fn)(*args, **kwargs)


def communicator(
    path: str, *, token: str | None = None, query: bool = False, headers: list | None = None
) -> Any:
    from stratbox.asgi import application

    hdrs = list(headers or [])
    if not any(name == b"host" for name, _ in hdrs):
        hdrs.append((b"host", b"127.0.0.1"))  # a browser always sends it; the Origin check compares it
    if token is not None and not query:
        hdrs.append((b"authorization", f"Bearer {token}".encode()))
    if token is not None and query:
        path = f"{path}?token={token}"
    return WebsocketCommunicator(application, path, headers=hdrs)


async def open_socket(path: str, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Connect and return (communicator, hello message); fails the test unless subscribed."""
    comm = communicator(path, **kwargs)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.send", output
    hello = json.loads(output["text"])
    assert hello["kind"] == "hello", hello
    return comm, hello


async def refused_code(path: str, **kwargs: Any) -> int | None:
    """Connect and return the close code the server answers with (None: handshake refused)."""
    comm = communicator(path, **kwargs)
    connected, code = await comm.connect(timeout=5)
    if not connected:
        return None
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output  # nothing is pushed before the close
    return int(output["code"])


async def receive_json(comm: Any, timeout: float = 5) -> dict[str, Any]:
    output = await comm.receive_output(timeout=timeout)
    assert output["type"] == "websocket.send", output
    return json.loads(output["text"])


async def receive_until(comm: Any, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    """`count` event messages (pongs skipped), or fail after `timeout` seconds."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"received {len(got)} of {count}: {got[-3:]}"
        message = await receive_json(comm, timeout=remaining)
        if message["kind"] != "pong":
            got.append(message)
    return got


async def drain(comm: Any, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Everything the socket still delivers until it has been quiet for `quiet` seconds."""
    got = []
    while not await comm.receive_nothing(timeout=quiet, interval=0.01):
        got.append(await receive_json(comm))
    return got


async def group_send(group: str, message: dict[str, Any]) -> None:
    from channels.layers import get_channel_layer

    await get_channel_layer().group_send(group, message)


def event(instance: Any, seq: int, kind: str = "action", **data: Any) -> dict[str, Any]:
    return {
        "type": "instance.event",
        "kind": kind,
        "instance_id": str(instance.pk),
        "data": data,
        "seq": seq,
        "ts": time.time(),
    }


def start_publisher(*args: str) -> subprocess.Popen[str]:
    """`tests/realtime/publisher.py` in its own interpreter (another process, like a worker)."""
    from django.conf import settings

    env = {**os.environ, "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "stratbox.settings"}
    return subprocess.Popen(
        [sys.executable, str(PUBLISHER), *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
