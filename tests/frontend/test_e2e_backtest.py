"""A backtest in a real browser: the form -> the progress bar advancing live -> metrics, the equity
chart and the trade table — against uvicorn + Channels, a real Celery worker and sandbox host,
PostgreSQL and Redis.

The worker is started only once the result page is open and its websocket is live: the run then
cannot finish before the page listens, so the progress the page shows is deterministic. Every
value the progress bar takes is reported to the test (a MutationObserver, installed before any
page script, calls an exposed function — it survives the reload the page does when the run ends).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import WorkerProcess
from tests.factories import make_user
from tests.frontend.conftest import screenshot

pytestmark = pytest.mark.browser

PASSWORD = "a-long-test-password-1"  # tests.factories.make_user's default
BARS = 3000
CHUNK = 250  # 12 chunks: progress is published after each
START = datetime(2026, 1, 5, tzinfo=UTC)

RECORD_PROGRESS = """
(() => {
  const watch = () => {
    const bar = document.getElementById("bt-progress");
    if (!bar) return;
    const report = () => window.__progressSeen(Number(bar.dataset.percent || 0), Number(bar.value), Number(bar.max));
    new MutationObserver(report).observe(bar, { attributes: true, attributeFilter: ["value", "data-percent"] });
  };
  document.addEventListener("DOMContentLoaded", watch);
})();
"""


def _store_bars(market: Any) -> None:
    """A few thousand 1-minute bars through the markets import service: a slow sine plus a faster
    one, so the SMA(10/20) crossover trades a few dozen times."""
    from stratbox.markets.services import bars_import_text

    lines = ["ts,open,high,low,close,volume"]
    previous = 100.0
    for i in range(BARS):
        close = 100 + 8 * math.sin(i / 45) + 2 * math.sin(i / 7)
        high, low = max(previous, close) + 0.1, min(previous, close) - 0.1
        ts = int((START + timedelta(minutes=i)).timestamp())
        lines.append(f"{ts},{previous:.4f},{high:.4f},{low:.4f},{close:.4f},1")
        previous = close
    result = bars_import_text(market=market, text="\n".join(lines) + "\n", interval_seconds=60)
    assert result.ok and result.imported == BARS, result.errors[:3]


def _login(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()


def test_backtest_progress_metrics_and_chart(page: Any, asgi_server: Any, market: Any) -> None:
    from stratbox.backtests.models import Backtest
    from stratbox.backtests.selectors import backtest_trade_list
    from strategies_store.services import catalog_install
    from tenants.services import tenant_create

    catalog_install()
    _store_bars(market)
    user = make_user("quant@example.test")
    tenant_create(name="Quant desk", owner=user)

    seen: list[tuple[int, float, float]] = []
    page.expose_function("__progressSeen", lambda pct, value, top: seen.append((pct, value, top)))
    page.add_init_script(RECORD_PROGRESS)
    _login(page, user.email)

    # --- the form: a catalog strategy over the stored bars, in small chunks
    page.goto("/backtests/new/")
    page.get_by_label("Name (optional)").fill("SMA over stored bars")
    version = page.get_by_label("…or a strategy version (default config)")
    version.select_option(label="sma_crossover v1")
    page.locator("#id_market").select_option(str(market.id))
    page.locator("#id_start").fill("2026-01-05T00:00")
    page.locator("#id_end").fill("2026-01-08T00:00")
    page.locator("#id_interval_seconds").fill("60")
    page.get_by_label("Bars per chunk (advanced)").fill(str(CHUNK))
    page.get_by_role("button", name="Run backtest").click()

    # --- queued: the page listens before any worker exists
    progress = page.locator("#bt-progress")
    expect(progress).to_be_visible()
    expect(page.locator("#bt-progress-percent")).to_have_text("0 %")
    expect(page.locator("[data-live-indicator]").first).to_have_attribute("data-state", "live")
    backtest = Backtest.objects.get()
    assert (backtest.status, backtest.bars_total, backtest.chunk_bars) == ("queued", BARS, CHUNK)

    worker = WorkerProcess(name=f"bt{uuid.uuid4().hex[:6]}", queue=asgi_server.queue).start()
    try:
        # The run ends with a reload into the results (no progress section any more).
        expect(page.locator("#bt-status")).to_have_text("Succeeded", timeout=30_000)
        expect(progress).to_have_count(0)
    finally:
        worker.stop()

    percents = [pct for pct, _, _ in seen]
    assert any(0 < pct < 100 for pct in percents), f"no intermediate progress shown: {seen}"
    assert percents[-1] == 100 and percents == sorted(percents), seen
    assert all(top == BARS for _, _, top in seen)

    # --- the results: metrics, the equity chart (drawn), the trade table
    backtest.refresh_from_db()
    assert backtest.status == "succeeded" and backtest.bars_done == BARS and backtest.num_trades
    metrics = page.locator("#metrics-h + .metrics")
    expect(metrics.locator(".metric", has_text="Trades").locator(".value")).to_have_text(
        str(backtest.num_trades)
    )
    chart = page.locator("[data-equity-chart] canvas").first
    expect(chart).to_be_visible()
    painted = page.evaluate(
        """() => [...document.querySelectorAll('[data-equity-chart] canvas')].some((c) => {
             if (!c.width || !c.height) return false;
             const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) return true;
             return false;
           })"""
    )
    assert painted, "the equity chart's canvases are empty"
    trades = backtest_trade_list(backtest=backtest)
    # 50 trades a page, the pager counting them all.
    expect(page.locator("#bt-trades tbody tr")).to_have_count(min(trades.count(), 50))
    if trades.count() > 50:
        expect(page.locator("#bt-trades-pager")).to_contain_text(f"{trades.count()} trades")
    first = trades.first()
    expect(page.locator("#bt-trades tbody tr").first).to_contain_text(first.side)
    assert not page.js_errors, page.js_errors
    screenshot(page, "issue6-backtest-result")
