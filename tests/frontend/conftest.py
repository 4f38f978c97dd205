"""Browser-test fixtures: the real ASGI app served by uvicorn, and a headless Debian Chromium.

`asgi_server` starts `uvicorn stratbox.asgi:application` (HTTP + websockets through Channels) in a
subprocess on a free loopback port, against the test database and the test Redis, once per
session; every test that uses it gets `transactional_db` (the server sees only committed rows, and
the tables are flushed after each test). Playwright drives `/usr/bin/chromium` — it never downloads
a browser. Screenshots go to `test-artifacts/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BASE_DIR, WorkerProcess, _test_database_url
from tests.uvicorn import served

CHROMIUM = os.environ.get("STRATBOX_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = BASE_DIR / "test-artifacts"
STATIC_BUILD = BASE_DIR / "frontend" / "static" / "build"


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    queue: str  # the Celery queue the server enqueues to (and `live_worker` consumes)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _ensure_static_build() -> None:
    """The pages load build/app.js and build/app.css; build them if `make` has not yet."""
    if (STATIC_BUILD / "app.js").exists() and (STATIC_BUILD / "app.css").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("frontend/static/build is missing and npm is not installed: run `make frontend`.")
    frontend = BASE_DIR / "frontend"
    if not (frontend / "node_modules").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=frontend, check=True)
    subprocess.run([npm, "run", "--silent", "build"], cwd=frontend, check=True)


@pytest.fixture(scope="session")
def _live_server_process(django_db_setup: None, django_db_blocker: Any) -> Iterator[LiveServer]:
    from django.conf import settings

    _ensure_static_build()
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    queue = f"test-live-{uuid.uuid4().hex[:10]}"
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "tests.frontend.live_settings",
        "CELERY_QUEUE": queue,
    }
    # /accounts/login/ renders a template and touches the session table: a real readiness check.
    with served("live-server", env, ready_path="/accounts/login/") as app:
        yield LiveServer(url=app.base, proc=app.proc, log_path=app.log_path, queue=queue)


@pytest.fixture
def asgi_server(transactional_db: None, _live_server_process: LiveServer) -> LiveServer:
    """The real ASGI app on a loopback port. Rows the test creates must be committed (they are:
    `transactional_db`); a later `worker` fixture shares the same test database and Redis."""
    if _live_server_process.proc.poll() is not None:
        pytest.fail(f"the live server died:\n{_live_server_process.log_tail()}")
    return _live_server_process


@pytest.fixture
def live_worker(asgi_server: LiveServer, settings: Any) -> Iterator[WorkerProcess]:
    """A real Celery worker consuming the live server's queue (tasks the pages enqueue run)."""
    from stratbox.celery import app

    settings.CELERY_TASK_DEFAULT_QUEUE = asgi_server.queue
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = asgi_server.queue
    proc = WorkerProcess(name=f"lw{uuid.uuid4().hex[:6]}", queue=asgi_server.queue).start()
    try:
        yield proc
    finally:
        proc.stop()
        app.conf.task_default_queue = previous


@pytest.fixture
def feed_and_dispatcher(live_worker: Any) -> Iterator[None]:
    """Quotes every 0.5 s and due ticks onto the worker's queue: `run_feed` and beat, in a thread."""
    from django.db import connection

    from stratbox.engine.dispatcher import dispatch_once
    from stratbox.markets.feeds import feed_step

    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                now = time.time()
                feed_step(now)
                dispatch_once(now)
                stop.wait(0.5)
        except BaseException as exc:  # surfaced by the fixture's teardown
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, name="feed-dispatch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors, errors


# --- Playwright + Debian Chromium ----------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module.

    Sync Playwright keeps an event loop running in this thread, which makes Django refuse ORM
    calls from the test body; DJANGO_ALLOW_ASYNC_UNSAFE lifts that for this module only.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (the CI script does).")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    # Never let Playwright fetch a browser of its own.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    manager = sync_playwright().start()
    chromium = manager.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
    )
    try:
        yield chromium
    finally:
        chromium.close()
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, asgi_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) on the live server; a screenshot is kept when the test fails."""
    context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    # Uncaught JavaScript exceptions; tests assert there are none. (Console "failed to load" lines
    # are not collected: a form answered with its errors is a deliberate HTTP 400.)
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    page.js_errors = js_errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            screenshot(page, f"FAILED-{request.node.name}")
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Expose each phase's report on the item, so `page` knows whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
