"""Backtest bars from a CSV in a real browser: the upload shows its progress, the file becomes a
stored dataset, and the next backtest picks that dataset on the form instead of uploading again
(uvicorn + PostgreSQL; the runs stay queued: no worker is needed to check what was created)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import make_user

pytestmark = pytest.mark.browser

PASSWORD = "a-long-test-password-1"  # tests.factories.make_user's default
BARS = 20_000  # ~1 MB: big enough for the upload to report progress

RECORD_PROGRESS = """
(() => {
  const watch = () => {
    const bar = document.getElementById("upload-progress");
    if (!bar) return;
    new MutationObserver(() => window.__uploadSeen(Number(bar.dataset.percent || 0)))
      .observe(bar, { attributes: true, attributeFilter: ["data-percent"] });
  };
  document.addEventListener("DOMContentLoaded", watch);
})();
"""


def _csv() -> bytes:
    """backtesting.py's export format: an unnamed index column holding the datetime."""
    start = datetime(2025, 3, 3, tzinfo=UTC)
    lines = [",Open,High,Low,Close,Volume"]
    prev = 100.0
    for i in range(BARS):
        close = 100 + 5 * math.sin(i / 40)
        stamp = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{stamp},{prev:.4f},{max(prev, close) + 0.1:.4f},{min(prev, close) - 0.1:.4f},{close:.4f},7"
        )
        prev = close
    return ("\n".join(lines) + "\n").encode()


def _login(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()


def test_upload_once_with_progress_then_pick_the_stored_dataset(page: Any, asgi_server: Any) -> None:
    from stratbox.backtests.models import Backtest, BarDataset
    from strategies_store.services import catalog_install
    from tenants.services import tenant_create

    catalog_install()
    user = make_user("csv@example.test")
    tenant = tenant_create(name="CSV desk", owner=user)
    seen: list[int] = []
    page.expose_function("__uploadSeen", lambda pct: seen.append(pct))
    page.add_init_script(RECORD_PROGRESS)
    _login(page, user.email)

    # --- first run: upload the file
    page.goto("/backtests/new/")
    page.get_by_label("…or a strategy version (default config)").select_option(label="sma_crossover v1")
    page.locator("#id_market").select_option("")
    page.locator("#id_csv_file").set_input_files(
        {"name": "GOOG.csv", "mimeType": "text/csv", "buffer": _csv()}
    )
    page.get_by_role("button", name="Run backtest").click()
    expect(page.locator("#bt-status")).to_be_visible(timeout=30_000)
    assert seen and seen[-1] == 100, f"upload progress not shown: {seen}"
    dataset = BarDataset.objects.get(tenant=tenant)
    assert dataset.rows == BARS and dataset.name == "GOOG.csv"

    # --- second run: the form offers the stored dataset, with its bar count and range
    page.goto("/backtests/new/")
    picker = page.get_by_label("…or a stored dataset (a CSV you imported before)")
    expect(picker.locator("option", has_text="GOOG.csv — 20,000 bars, 2025-03-03 00:00")).to_have_count(1)
    page.get_by_label("…or a strategy version (default config)").select_option(label="sma_crossover v1")
    page.locator("#id_market").select_option("")
    picker.select_option(str(dataset.pk))
    page.get_by_role("button", name="Run backtest").click()
    expect(page.locator("#bt-status")).to_be_visible(timeout=30_000)

    runs = list(Backtest.objects.filter(tenant=tenant))
    assert len(runs) == 2 and {r.dataset_id for r in runs} == {dataset.pk}
    assert all(r.bars_total == BARS for r in runs)
    assert BarDataset.objects.count() == 1  # stored once

    # --- a bad file: the form comes back with the lines named, through the same upload path
    page.goto("/backtests/new/")
    page.get_by_label("…or a strategy version (default config)").select_option(label="sma_crossover v1")
    page.locator("#id_market").select_option("")
    page.locator("#id_csv_file").set_input_files(
        {
            "name": "bad.csv",
            "mimeType": "text/csv",
            "buffer": b"Date,Open,High,Low,Close\n2025-01-01,1,x,1,1\n",
        }
    )
    page.get_by_role("button", name="Run backtest").click()
    expect(page.get_by_text("line 2: high 'x' is not a number")).to_be_visible(timeout=30_000)
    assert Backtest.objects.filter(tenant=tenant).count() == 2
