"""The built-in catalog: tenant-less, validated through the sandbox, installed idempotently."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from strategies_store.models import StrategyDefinition, StrategyVersion
from strategies_store.services import (
    CATALOG_DIR,
    CatalogError,
    CatalogReadOnly,
    catalog_install,
    strategy_delete,
    strategy_update,
    version_create,
)
from tenants.models import AuditEvent
from tests.strategies_store.conftest import ENTRY_OK, THESIS, TICK_OK_V2, write_catalog

pytestmark = pytest.mark.django_db


def test_install_creates_tenantless_definitions(tmp_path: Path) -> None:
    installed = catalog_install(manifest_path=write_catalog(tmp_path))
    assert [d.key for d in installed] == ["test-sma", "test-signals"]
    assert all(d.tenant_id is None for d in installed)
    sma = StrategyDefinition.objects.get(key="test-sma")
    assert (sma.name, sma.style) == ("Test SMA", "tick")
    assert sma.versions.get().validation_report["files"]["strategy.py"]["ok"] is True
    signals = StrategyDefinition.objects.get(key="test-signals")
    assert signals.style == "signal_bundle" and signals.thesis == THESIS
    version = signals.versions.get()
    assert version.source == ENTRY_OK and version.config_schema["threshold"]["type"] == "float"
    assert AuditEvent.objects.filter(action="strategy.upload", tenant__isnull=True).count() == 2


def test_install_is_idempotent_and_versions_changes(tmp_path: Path) -> None:
    manifest = write_catalog(tmp_path)
    catalog_install(manifest_path=manifest)
    ids = set(StrategyDefinition.objects.values_list("id", flat=True))
    events = AuditEvent.objects.count()
    catalog_install(manifest_path=manifest)
    assert set(StrategyDefinition.objects.values_list("id", flat=True)) == ids
    assert StrategyVersion.objects.count() == 2 and AuditEvent.objects.count() == events
    write_catalog(tmp_path, tick_source=TICK_OK_V2)
    catalog_install(manifest_path=manifest)
    sma = StrategyDefinition.objects.get(key="test-sma")
    assert list(sma.versions.values_list("number", flat=True)) == [2, 1]
    assert StrategyDefinition.objects.get(key="test-signals").versions.count() == 1


def test_manifest_metadata_change_updates_without_a_version(tmp_path: Path) -> None:
    manifest = write_catalog(tmp_path)
    catalog_install(manifest_path=manifest)
    data = json.loads(manifest.read_text())
    data["strategies"][0]["name"] = "Renamed SMA"
    manifest.write_text(json.dumps(data))
    catalog_install(manifest_path=manifest)
    sma = StrategyDefinition.objects.get(key="test-sma")
    assert sma.name == "Renamed SMA" and sma.versions.count() == 1


def test_invalid_catalog_source_fails_loudly(tmp_path: Path) -> None:
    manifest = write_catalog(tmp_path, tick_source="import os\n")
    with pytest.raises(CatalogError, match="test-sma"):
        catalog_install(manifest_path=manifest)
    assert not StrategyDefinition.objects.filter(key="test-sma").exists()


def test_catalog_missing_file_fails_loudly(tmp_path: Path) -> None:
    manifest = write_catalog(tmp_path)
    (tmp_path / "sig" / "exit.py").unlink()
    with pytest.raises(CatalogError, match="exit.py"):
        catalog_install(manifest_path=manifest)


def test_services_refuse_catalog_writes(catalog_strategy: Any, user: Any) -> None:
    with pytest.raises(CatalogReadOnly):
        version_create(definition=catalog_strategy, author=user, source=TICK_OK_V2)
    with pytest.raises(CatalogReadOnly):
        strategy_update(definition=catalog_strategy, actor=user, name="x")
    with pytest.raises(CatalogReadOnly):
        strategy_delete(definition=catalog_strategy, actor=user)
    assert catalog_strategy.versions.count() == 1
    assert StrategyDefinition.objects.filter(pk=catalog_strategy.pk).exists()


@pytest.mark.skipif(not (CATALOG_DIR / "manifest.json").is_file(), reason="catalog not shipped yet")
def test_shipped_catalog_installs_idempotently() -> None:
    installed = catalog_install()
    manifest = json.loads((CATALOG_DIR / "manifest.json").read_text())
    entries = manifest["strategies"] if isinstance(manifest, dict) else manifest
    assert len(installed) == len(entries) >= 4
    assert {d.style for d in installed} == {"tick", "signal_bundle"}
    assert all(d.thesis for d in installed if d.style == "signal_bundle")
    versions = StrategyVersion.objects.count()
    assert catalog_install() and StrategyVersion.objects.count() == versions
