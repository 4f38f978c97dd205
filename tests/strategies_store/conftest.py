"""Fixtures for the strategy store: small valid strategies (tick and bundle) and upload helpers.

Every upload here goes through the real sandbox (`sandbox.validate_source` compiles in a host
process); nothing is mocked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TICK_OK = """\
from sandbox.sdk import Strategy


class Momentum(Strategy):
    CONFIG_SCHEMA = {
        "window": {"type": "int", "default": 20, "min": 2, "max": 500, "description": "SMA window"},
        "side": {"type": "choice", "choices": ["long", "short"], "default": "long"},
    }

    def init(self):
        return {"prices": []}

    def on_tick(self, tick):
        self.state["prices"].append(tick.price)

    def render(self):
        return {"widgets": []}
"""

TICK_OK_V2 = TICK_OK.replace('"default": 20', '"default": 30')

ENTRY_OK = """\
from sandbox.sdk import EntrySignal


def should_enter(ctx):
    return []
"""

EXIT_OK = """\
from sandbox.sdk import ExitSignal


def should_exit(ctx, position):
    return None
"""

THESIS = "Prices that moved strongly keep moving for a while; ride the move and cut losers early."

CONFIG_OK: dict[str, Any] = {
    "name": "Momentum signals",
    "description": "Enters on strong moves",
    "config_schema": {"threshold": {"type": "float", "default": 0.02, "min": 0.0, "max": 1.0}},
}


def tick_payload(key: str = "momentum", source: str = TICK_OK, **extra: Any) -> dict[str, Any]:
    return {"key": key, "name": "Momentum", "description": "SMA momentum", "source": source, **extra}


def bundle_payload(key: str = "signals", **extra: Any) -> dict[str, Any]:
    data = {
        "key": key,
        "name": "Signals",
        "entry_source": ENTRY_OK,
        "exit_source": EXIT_OK,
        "config": CONFIG_OK,
        "thesis": THESIS,
    }
    data.update(extra)
    return data


@pytest.fixture
def tick_version(tenant: Any, user: Any) -> Any:
    from strategies_store.services import strategy_create

    return strategy_create(
        tenant=tenant, author=user, key="momentum", name="Momentum", style="tick", source=TICK_OK
    )


@pytest.fixture
def tick_strategy(tick_version: Any) -> Any:
    return tick_version.definition


@pytest.fixture
def bundle_strategy(tenant: Any, user: Any) -> Any:
    from strategies_store.services import strategy_create

    return strategy_create(
        tenant=tenant,
        author=user,
        key="signals",
        name="Signals",
        style="signal_bundle",
        thesis=THESIS,
        source=ENTRY_OK,
        exit_source=EXIT_OK,
        config=CONFIG_OK,
    ).definition


def write_catalog(base: Path, *, tick_source: str = TICK_OK, entry_source: str = ENTRY_OK) -> Path:
    """A small catalog in the manifest format of strategies_store/catalog/manifest.json."""
    (base / "sma").mkdir(parents=True, exist_ok=True)
    (base / "sma" / "strategy.py").write_text(tick_source)
    bundle = base / "sig"
    bundle.mkdir(exist_ok=True)
    (bundle / "entry.py").write_text(entry_source)
    (bundle / "exit.py").write_text(EXIT_OK)
    (bundle / "config.json").write_text(json.dumps({**CONFIG_OK, "thesis": THESIS}))
    manifest = {
        "strategies": [
            {
                "key": "test-sma",
                "name": "Test SMA",
                "description": "catalog tick strategy",
                "style": "tick",
                "files": ["sma/strategy.py"],
            },
            {
                "key": "test-signals",
                "name": "Test signals",
                "description": "catalog bundle",
                "style": "signal_bundle",
                "files": ["sig/entry.py", "sig/exit.py", "sig/config.json"],
            },
        ]
    }
    path = base / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture
def catalog_strategy(db: None, tmp_path: Path) -> Any:
    from strategies_store.models import StrategyDefinition
    from strategies_store.services import catalog_install

    catalog_install(manifest_path=write_catalog(tmp_path))
    return StrategyDefinition.objects.get(tenant__isnull=True, key="test-sma")
