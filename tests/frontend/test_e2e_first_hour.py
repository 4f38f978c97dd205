"""The first hour of a new user, in Debian's Chromium against the real stack (ASGI server, Celery
worker, feed, dispatcher, PostgreSQL, Redis), asserting each fix of that journey:

landing page before the login form -> log in -> a bundle upload refused without losing the chosen
files, then fixed in place -> the demo market's SMA crossover: power on, Activate asks ONCE ->
paper fills push the Performance card and the track record live -> a reloading config change with
a position open -> the record keeps counting, and after a page reload the graduation box, the
Performance card and the API show the same track record -> the execution history gains a row
without a reload -> the strategy's chart sizes its y axis to its labels -> pause: the banner says
nothing reaches the broker -> backtest trades paginate -> staff land on the review queue.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import BASE_DIR
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.browser

LIVE = 30_000
PASSWORD = "a-long-test-password-1"


def _readme_bundle() -> dict[str, str]:
    text = (BASE_DIR / "README.md").read_text()
    section = text.split("### Example: signal style (bundle)")[1].split("\n## ")[0]
    return dict(re.findall(r"`([\w.]+)`:\n```\w+\n(.*?)```", section, flags=re.S))


def _log_in(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _int(text: str | None) -> int:
    match = re.search(r"\d+", text or "")
    assert match is not None, text
    return int(match.group())


@pytest.fixture
def journey(asgi_server: Any, feed_and_dispatcher: None) -> dict[str, Any]:
    from stratbox.engine.bootstrap import markets_install
    from stratbox.trading.models import Account
    from strategies_store.services import catalog_install

    markets_install()
    catalog_install()
    user = make_user("first-hour@example.test", password=PASSWORD)
    tenant = make_tenant("First hour", owner=user)
    account = Account.objects.filter(tenant=tenant, kind="paper").first() or Account.objects.create(
        tenant=tenant, name="Paper", kind="paper", starting_balance=Decimal("10000"), balance=Decimal("10000")
    )
    return {"user": user, "tenant": tenant, "account": account}


def test_the_first_hour(page: Any, browser: Any, asgi_server: Any, journey: dict[str, Any]) -> None:
    from stratbox.instances.services import instance_create
    from stratbox.markets.models import Market
    from stratbox.trading.models import Position

    tenant, account = journey["tenant"], journey["account"]

    # --- an anonymous visitor sees what Stratbox is, then one "Forgot your password?"
    page.goto("/")
    expect(page.locator("#landing h1")).to_contain_text("run your Python trading strategies")
    page.locator("#landing").get_by_role("link", name="Log in").click()
    expect(page.get_by_text("Forgot your password?")).to_have_count(1)
    _log_in(page, "first-hour@example.test")
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()

    # --- a bundle refused for its config.json keeps the chosen files; fixed in the text area
    bundle = _readme_bundle()
    page.goto("/strategies/upload/")
    page.get_by_label("Bundle (entry.py + exit.py + config.json)").check()
    page.get_by_label("Key").fill("momentum-entries")
    page.get_by_label("Name").fill("Momentum entries")
    page.get_by_label("entry.py file").set_input_files(
        {"name": "entry.py", "mimeType": "text/x-python", "buffer": bundle["entry.py"].encode()}
    )
    page.get_by_label("exit.py file").set_input_files(
        {"name": "exit.py", "mimeType": "text/x-python", "buffer": bundle["exit.py"].encode()}
    )
    no_schema = {k: v for k, v in json.loads(bundle["config.json"]).items() if k != "config_schema"}
    page.get_by_label("config.json file").set_input_files(
        {"name": "config.json", "mimeType": "application/json", "buffer": json.dumps(no_schema).encode()}
    )
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.locator("#validation-errors")).to_contain_text("config_schema")
    expect(page.locator("#kept-files")).to_be_visible()
    kept = page.evaluate(
        "() => ['entry_source', 'exit_source'].map((n) => document.querySelector(`textarea[name=${n}]`).value)"
    )
    assert [k.strip() for k in kept] == [bundle["entry.py"].strip(), bundle["exit.py"].strip()]
    # The files are in code editors (CodeMirror: highlighted, numbered lines).
    expect(page.locator('[data-editor-for="entry_source"] .cm-lineNumbers')).to_be_visible()
    expect(page.locator('[data-editor-for="entry_source"] .cm-line').first).to_contain_text(
        "from sandbox.sdk"
    )
    page.get_by_label("…or paste config.json").fill(bundle["config.json"])
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.locator('[data-version="1"]')).to_be_visible()

    # --- a code error is shown at its line, in the editor
    page.goto("/strategies/upload/")
    page.get_by_label("Key").fill("broken")
    page.get_by_label("Name").fill("Broken")
    broken = "from sandbox.sdk import Strategy\n\n\nclass Broken(Strategy)\n    pass\n"
    page.get_by_label("…or paste the source").fill(broken)
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.locator('#validation-errors [data-issue-line="4"]')).to_be_visible()
    line4 = page.locator('[data-editor-for="source"] .cm-line').nth(3)
    expect(line4).to_contain_text("class Broken(Strategy)")
    expect(line4.locator(".cm-lintRange-error")).to_have_count(1)
    expect(page.locator('[data-editor-for="source"] .cm-lint-marker-error')).to_have_count(1)

    # --- the demo market's SMA crossover, sized to stay inside the default capital per trade
    market = Market.objects.get(venue="SIM", symbol="BTC/USDT")
    instance = instance_create(
        tenant=tenant,
        actor=journey["user"],
        name="SMA on BTC",
        strategy_key="sma_crossover",
        account_id=account.id,
        market_id=market.id,
        config={"fast": 2, "slow": 3, "qty": 0.001},
        frequency_seconds=1,
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.goto(f"/instances/{instance.id}/")
    page.get_by_role("button", name="Power on (observe)").click()
    expect(page.locator("#mode-banner")).to_have_attribute("data-mode", "observe")
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#mode-banner")).to_have_attribute("data-mode", "active")
    assert len(dialogs) == 1, dialogs  # one confirmation per click (the page initialised twice)

    # --- fills push the Performance card and the track record, without a reload
    page.evaluate("window.__sameDocument = true")
    trades = page.locator('#performance [data-perf="trades"]')
    record = page.locator('#track-record-rows [data-record="trades"]')
    # The paper record gets its first trade pushed; Performance (no longer scoring shadow orders
    # once real ones exist) shows the same count.
    expect(record).to_have_text(re.compile(r"^\s*[1-9]"), timeout=LIVE * 3)
    expect(page.locator("#performance-block .badge.mode-observe")).to_have_count(0)
    _wait(
        lambda: _int(trades.text_content()) == _int(record.text_content()), 10, "Performance = track record"
    )
    # The graduation criteria follow too (they showed 0 trades next to a record of 2).
    criterion = page.locator('[data-criterion="TOO_FEW_TRADES"] [data-criterion-value]')
    _wait(lambda: _int(criterion.text_content()) == _int(record.text_content()), 10, "criteria = record")
    assert page.evaluate("window.__sameDocument === true")

    # --- a candlestick chart of the market, drawn, with the fills marked (from the server's data)
    expect(page.locator("#market-chart canvas").first).to_be_visible()
    marked = page.evaluate("() => JSON.parse(document.getElementById('market-markers').textContent).length")
    assert marked >= 1

    # --- the strategy's chart fits its labels (~60,000: "60,200", not "0,200")
    plot = page.locator("#widgets .chart-widget .plot").first
    expect(plot.locator(".uplot")).to_have_count(1, timeout=LIVE)
    axis = plot.evaluate(
        """(node) => {
          const u = node._plot, ax = u.axes[1];
          const ctx = document.createElement("canvas").getContext("2d");
          ctx.font = ax.font[0];
          const widths = ax._values.map((v) => ctx.measureText(v).width / (window.devicePixelRatio || 1));
          return {labels: ax._values, size: ax._size, widest: Math.max(...widths), tick: ax.ticks.size + ax.gap};
        }"""
    )
    assert any("," in label for label in axis["labels"]), axis  # the full price, grouped
    assert axis["size"] >= axis["widest"] + axis["tick"], axis
    # An index x axis (bar 0, 1, 2, …) ticks on whole numbers only.
    x_labels = page.evaluate(
        """() => {
          const node = document.createElement("div");
          node.style.width = "500px";
          document.body.append(node);
          const u = window.StratboxCharts.metricPlot(node, {labels: ["v"], data: [[0, 1, 2, 3], [5, 6, 7, 8]], timeX: false});
          // uPlot draws (and formats its ticks) on the next frame.
          return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(u.axes[0]._values))));
        }"""
    )
    assert x_labels and all(re.fullmatch(r"\d+", label) for label in x_labels if label), x_labels

    # --- a reloading config change while a position is open; the record keeps counting
    _wait(
        lambda: Position.objects.filter(instance=instance, is_shadow=False, closed_at__isnull=True).exists(),
        90,
        "an open paper position",
    )
    before = _int(record.text_content())
    page.get_by_role("tab", name=re.compile("Overview")).click()
    page.get_by_label("Slow").fill("4")
    page.get_by_role("button", name="Save config").click()
    expect(page.locator(".messages")).to_contain_text("reloads with the new config")
    # The record keeps counting (it stalled at the count of the reload before), pushed live.
    _wait(
        lambda: _int(page.locator('#track-record-rows [data-record="trades"]').text_content()) >= before + 2,
        150,
        "two more trades after the reload",
    )

    # --- the execution history gains a row without a reload
    page.get_by_role("tab", name=re.compile("Execution history")).click()
    first = page.locator("#run-list > li").first
    expect(first).to_be_visible(timeout=LIVE)
    first_id = first.get_attribute("data-run-id")
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#run-list > li").first).not_to_have_attribute(
        "data-run-id", first_id or "", timeout=LIVE
    )
    assert page.evaluate("window.__sameDocument === true")
    assert "slot " not in (page.locator("#runs").text_content() or "")

    # --- pause: the banner says nothing reaches the broker (pushed, without a reload)
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#mode-banner")).to_have_attribute("data-paused", "true")
    expect(page.locator("#mode-banner")).to_contain_text("no orders reach the broker")
    expect(page.locator("[data-live-status] .icon-pause")).to_be_visible()
    assert page.js_errors == []

    # --- after a page reload (paused: nothing trades any more) the graduation box, the
    # Performance card and the API show the same track record
    page.wait_for_timeout(2000)  # a tick in flight when the pause landed
    page.reload()
    keys = ("trades", "win_rate", "max_drawdown")
    perf = {k: page.locator(f'#performance [data-perf="{k}"]').text_content() for k in keys}
    rec = {k: page.locator(f'#track-record-rows [data-record="{k}"]').text_content() for k in keys}
    assert _int(perf["trades"]) == _int(rec["trades"]) >= before + 2, (perf, rec)
    assert perf["win_rate"] == rec["win_rate"] and perf["max_drawdown"] == rec["max_drawdown"], (perf, rec)
    api = page.request.get(f"/api/v1/instances/{instance.id}/governance/").json()["record"]
    assert api["trades"] == _int(rec["trades"]), (api, rec)
    assert f"{api['win_rate']} %" == rec["win_rate"] and f"{api['max_drawdown']} %" == rec["max_drawdown"], (
        api,
        rec,
    )
    expect(page.locator("#mode-banner")).to_contain_text("no orders reach the broker")

    # --- long backtest trade tables paginate
    from stratbox.backtests.models import Backtest, BacktestTrade

    version = instance.version
    bt = Backtest.objects.create(
        tenant=tenant, version=version, version_sha256=version.sha256, status="succeeded", name="Long run"
    )
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    BacktestTrade.objects.bulk_create(
        BacktestTrade(
            backtest=bt,
            seq=i + 1,
            side="long",
            qty=0.001,
            entry_ts=start + i * 60,
            entry_price=60000.0,
            exit_ts=start + i * 60 + 30,
            exit_price=60010.0,
            pnl=0.01,
            fees=0.0,
        )
        for i in range(75)
    )
    page.goto(f"/backtests/{bt.id}/")
    expect(page.locator("#bt-trades tbody tr")).to_have_count(50)
    page.locator("#bt-trades-pager").get_by_role("link", name="Next →").click()
    expect(page.locator("#bt-trades tbody tr")).to_have_count(25)
    expect(page.locator("#bt-trades-pager")).to_contain_text("Page 2 of 2")

    # --- staff land on the review queue, with a staff navigation
    make_user("reviewer@stratbox.test", password=PASSWORD, is_staff=True)
    staff_context = browser.new_context(base_url=asgi_server.url)
    staff = staff_context.new_page()
    try:
        _log_in(staff, "reviewer@stratbox.test")
        expect(staff).to_have_url(re.compile(r"/staff/live-requests/$"))
        nav = staff.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Review queue")).to_be_visible()
        expect(nav.get_by_role("link", name="Instances")).to_have_count(0)
    finally:
        staff_context.close()
