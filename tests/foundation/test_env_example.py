"""Every environment variable the settings (or the Django-free sandbox and launcher) read is documented in
`.env.example`, and `.env.example` names nothing that nobody reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_by_settings() -> set[str]:
    text = (ROOT / "stratbox/settings.py").read_text()
    names = set(re.findall(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]*)["']\s+(?:not\s+)?in\s+env\b""", text))
    names |= set(re.findall(r"""os\.environ\.get\(\s*["']([A-Z][A-Z0-9_]*)["']""", text))
    # The sandbox cannot read Django settings, and the launcher (`make run`) starts before them:
    # their few switches come from the environment directly.
    for path in [*sorted((ROOT / "sandbox").glob("*.py")), ROOT / "stratbox/launcher.py"]:
        names |= set(re.findall(r"""os\.environ\.get\(\s*["'](STRATBOX_[A-Z0-9_]*)["']""", path.read_text()))
    return names


def _documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))


def test_every_setting_read_from_the_environment_is_in_env_example() -> None:
    read = _read_by_settings()
    assert {"DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "STRATBOX_VAR_DIR"} <= read  # the scan works
    assert sorted(read - _documented()) == []


def test_env_example_names_no_setting_that_does_not_exist() -> None:
    assert sorted(_documented() - _read_by_settings()) == []
