"""Security settings come from the environment with production defaults: `check --deploy` is clean
with nothing but the required variables set, and each setting can be turned off on its own."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from typing import Any

from tests.conftest import BASE_DIR

PRINT = (
    "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
    "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
)


def _production_env(settings: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATBOX_HTTPS", "DJANGO_"))}
    env.update(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="stratbox.example.com,127.0.0.1,localhost",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://stratbox.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/stratbox",
        REDIS_URL=settings.REDIS_URL,
        **extra,
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_defaults(settings: Any) -> None:
    result = _manage(_production_env(settings), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    printed = _manage(_production_env(settings), "shell", "-c", PRINT)
    assert printed.stdout.splitlines()[-1].split() == [
        "True",
        "True",
        "True",
        "31536000",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
    ]


def test_each_setting_comes_from_the_environment(settings: Any) -> None:
    env = _production_env(settings, DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SECURE_HSTS_SECONDS="60")
    printed = _manage(env, "shell", "-c", PRINT)
    assert printed.stdout.splitlines()[-1].split()[:4] == ["True", "True", "False", "60"], printed.stderr
    local = _manage(_production_env(settings, STRATBOX_HTTPS="0"), "shell", "-c", PRINT)
    assert local.stdout.splitlines()[-1].split() == ["False", "False", "False", "0", "None"], local.stderr
