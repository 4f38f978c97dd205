"""Fixtures for the sandbox suite: shared host pools, reused across tests (hosts are expensive)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for path in (str(ROOT), str(Path(__file__).resolve().parent)):
    if path not in sys.path:
        sys.path.insert(0, path)

from sandbox import Limits, SandboxClient  # noqa: E402


@pytest.fixture(scope="session")
def client() -> Iterator[SandboxClient]:
    c = SandboxClient(Limits(tick_timeout=0.3, load_timeout=1.5, render_timeout=0.5), max_hosts=6)
    yield c
    c.close()


@pytest.fixture(scope="session")
def fast_client() -> Iterator[SandboxClient]:
    """Short budgets for the infinite-loop payloads."""
    c = SandboxClient(Limits(tick_timeout=0.15, load_timeout=0.6, render_timeout=0.15), max_hosts=2)
    yield c
    c.close()
