"""`?token=` credentials never reach the access log of the real server (uvicorn, access log on)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from stratbox.accesslog import redact
from tests.conftest import BASE_DIR, _test_database_url
from tests.loopback import free_port as _free_port

SECRET = "sbx_abcdef123456_thisisasecretvalue"


def test_redact_keeps_everything_but_the_credential() -> None:
    line = f'127.0.0.1:5 - "GET /ws/tenant/?a=1&token={SECRET}&b=2 HTTP/1.1" 404'
    assert redact(line) == '127.0.0.1:5 - "GET /ws/tenant/?a=1&token=[redacted]&b=2 HTTP/1.1" 404'


def test_the_servers_access_log_never_holds_a_query_token(transactional_db: None, settings: Any) -> None:
    port = _free_port()
    log_path = BASE_DIR / "var" / f"test-access-log-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "stratbox.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--lifespan", "off", "--log-level", "info"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                url = f"http://127.0.0.1:{port}/api/v1/instances/?token={SECRET}"
                urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback
            except urllib.error.HTTPError:
                break  # answered (401): the line is logged
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
        time.sleep(0.5)
        text = log_path.read_text()
        assert "/api/v1/instances/?token=[redacted]" in text, text[-3000:]
        assert SECRET not in text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
