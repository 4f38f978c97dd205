"""Engine tunables: cached per process, yet a changed setting is seen at once."""

from __future__ import annotations

from django.test import override_settings

from stratbox.engine import conf


def test_a_changed_setting_is_seen_at_once_and_restored(settings):
    assert conf.get("ENGINE_TICK_BATCH") == conf.DEFAULTS["ENGINE_TICK_BATCH"]
    settings.ENGINE_TICK_BATCH = 7
    assert conf.get("ENGINE_TICK_BATCH") == 7
    with override_settings(ENGINE_TICK_BATCH="9"):
        assert conf.get("ENGINE_TICK_BATCH") == 9  # converted to the default's type
    assert conf.get("ENGINE_TICK_BATCH") == 7


def test_the_environment_is_the_fallback(monkeypatch):
    monkeypatch.setenv("ENGINE_BATCH_SPAN", "0.5")
    with override_settings(ENGINE_BATCH_SPAN=None):  # announces the change: the cache forgets it
        assert conf.get("ENGINE_BATCH_SPAN") == 0.5
