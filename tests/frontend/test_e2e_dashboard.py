"""Issue 5's flow in a real browser, against the real stack: the ASGI app (HTTP + Channels), a
Celery worker, the market feed and the engine's dispatcher, PostgreSQL and Redis.

sign up -> upload a strategy with a syntax error (seen at its line) -> fix it -> create an
instance -> power on (observe): a widget updates and a log line arrives WITHOUT a page reload ->
shadow orders appear -> activate: a paper order appears in the actions feed -> pause shows
"Paused" with its reason -> a config change with a bad value shows the field error.

The feed and the dispatcher (what `manage.py run_feed` and beat do in production) run in a thread
of the test process, against the same test database and Redis as the server and the worker.
Screenshots land in test-artifacts/; the instance detail one is copied to docs/ for the README.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.conftest import ARTIFACTS, screenshot

pytestmark = pytest.mark.browser

# Live events need a few engine round trips; generous, but polled — a green run takes seconds.
LIVE_TIMEOUT = 20_000

GOOD_SOURCE = """from sandbox.sdk import Strategy


class Pinger(Strategy):
    CONFIG_SCHEMA = {
        "qty": {"type": "float", "default": 0.1, "min": 0.001, "max": 5, "description": "Order size"},
        "every": {"type": "int", "default": 2, "min": 1, "max": 100, "description": "Buy every N ticks"},
    }

    def init(self):
        return {"n": 0, "prices": []}

    def on_tick(self, tick):
        self.state["n"] += 1
        prices = self.state["prices"]
        prices.append([tick.ts, tick.price])
        if len(prices) > 60:
            del prices[0]
        self.context.log(f"tick {self.state['n']} at {tick.price:.2f}")
        if self.state["n"] % self.config["every"] == 0:
            receipt = self.context.place_order("buy", self.config["qty"], tag="ping")
            self.context.log(f"buy {self.config['qty']}: {receipt.status}")

    def render(self):
        return {"widgets": [
            {"type": "metric", "label": "Ticks seen", "value": self.state["n"]},
            {"type": "line_chart", "title": "Price", "series": [{"name": "price", "points": self.state["prices"]}]},
        ]}
"""
BROKEN_LINE = 13
BROKEN_SOURCE = GOOD_SOURCE.replace("    def on_tick(self, tick):", "    def on_tick(self, tick)")
assert BROKEN_SOURCE.splitlines()[BROKEN_LINE - 1] == "    def on_tick(self, tick)"


def _paper_account_for(email: str) -> Any:
    """The new tenant's paper account (created here if signup does not create one)."""
    from stratbox.trading.models import Account
    from tenants.models import Membership

    tenant = Membership.objects.select_related("tenant").get(user__email=email).tenant
    account = Account.objects.filter(tenant=tenant, kind="paper").first()
    return account or Account.objects.create(
        tenant=tenant, name="Paper", kind="paper", starting_balance=Decimal("10000"), balance=Decimal("10000")
    )


def _no_reload_marker(page: Any) -> None:
    page.evaluate("window.__sameDocument = true")


def _assert_same_document(page: Any) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def test_live_dashboard_flow(page: Any, market: Any, feed_and_dispatcher: None) -> None:
    email = "live@example.test"
    password = "a-long-browser-password-8"
    page.on("dialog", lambda dialog: dialog.accept())  # the "Activate?" confirmation

    # --- sign up
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    account = _paper_account_for(email)

    # --- upload with a syntax error: shown at its line; fix it in the editor
    page.goto("/strategies/upload/")
    page.get_by_label("Key").fill("pinger")
    page.get_by_label("Name").fill("Pinger")
    page.get_by_label("Strategy file (.py)").set_input_files(
        {"name": "pinger.py", "mimeType": "text/x-python", "buffer": BROKEN_SOURCE.encode()}
    )
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.locator(f'#validation-errors [data-issue-line="{BROKEN_LINE}"]')).to_contain_text(
        f"line {BROKEN_LINE}"
    )
    expect(page.locator(f"#line-source-{BROKEN_LINE}")).to_have_class(re.compile("has-error"))
    page.get_by_label("…or paste the source").fill(GOOD_SOURCE)
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.locator('[data-version="1"]')).to_be_visible()

    # --- create an instance that runs every second
    page.get_by_role("link", name="Create instance").click()
    page.get_by_label("Name").fill("Pinger on BTC")
    page.get_by_label("Account").select_option(str(account.id))
    page.get_by_label("Market").select_option(str(market.id))
    page.get_by_label("Run every (seconds)").fill("1")
    page.get_by_role("button", name="Create instance").click()
    expect(page.get_by_role("heading", name=re.compile("Pinger on BTC"))).to_be_visible()
    expect(page.locator("#mode-banner")).to_have_attribute("data-mode", "off")

    # --- power on (observe): widgets, logs and shadow orders arrive without a reload
    page.get_by_role("button", name="Power on (observe)").click()
    expect(page.locator("#mode-banner")).to_have_attribute("data-mode", "observe")
    expect(page.locator("#mode-banner")).to_contain_text("shadow orders")
    _no_reload_marker(page)
    page.get_by_role("tab", name=re.compile("Live activity")).click()
    expect(page.locator("#panel-live")).to_be_visible()
    expect(page.locator("#panel-live [data-live-indicator]")).to_have_text("Live", timeout=LIVE_TIMEOUT)
    expect(page.locator("#live-log .log-line").first).to_contain_text("tick", timeout=LIVE_TIMEOUT)
    # The engine renders watched instances on demand: the widget comes from the real strategy.
    metric = page.locator("#widgets .widget.metric .value").first
    expect(metric).to_have_text(re.compile(r"^\d+$"), timeout=LIVE_TIMEOUT)
    first_value = metric.text_content()
    expect(metric).not_to_have_text(first_value, timeout=LIVE_TIMEOUT)  # the widget updates
    expect(page.locator("#widgets .chart-widget .uplot")).to_have_count(1)
    expect(page.locator('#actions-feed [data-action-kind="shadow"]').first).to_be_visible(
        timeout=LIVE_TIMEOUT
    )
    expect(page.locator("[data-live-status] [data-status]")).to_have_attribute("data-status", "running")
    _assert_same_document(page)

    # --- activate: a paper order reaches the simulated broker and shows in the feed
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#mode-banner")).to_have_attribute("data-mode", "active")
    expect(page.locator("#mode-banner")).to_contain_text("paper account")
    _no_reload_marker(page)
    page.get_by_role("tab", name=re.compile("Live activity")).click()
    order = page.locator('#actions-feed li.fresh[data-action-kind="order"]').first
    expect(order).to_be_visible(timeout=LIVE_TIMEOUT)
    expect(order).to_contain_text("BUY")
    # The order's status changes (`order` events) land on its row.
    expect(order).to_have_attribute("title", re.compile("new → accepted\n.*accepted → filled"))
    expect(page.locator("#widgets .widget.metric")).to_have_count(1, timeout=LIVE_TIMEOUT)
    _assert_same_document(page)
    page.wait_for_timeout(300)  # let the chart paint
    screenshot(page, "issue5-instance-detail")
    readme_shot = ARTIFACTS / "issue5-instance-detail-viewport.png"
    page.screenshot(path=str(readme_shot), full_page=False)

    # --- the list shows it running, with counters, live
    page.get_by_role("link", name="Instances", exact=True).click()
    row = page.locator("#instances tbody tr").filter(has_text="Pinger on BTC")
    expect(row.locator("[data-mode]")).to_have_text("Active")
    expect(row.locator('[data-cell="status"] [data-status]')).to_have_attribute("data-status", "running")
    expect(page.locator("[data-live-indicator]")).to_have_text("Live", timeout=LIVE_TIMEOUT)
    runs = row.locator('[data-stat="runs"]')
    before = int(runs.text_content() or "0")
    expect(runs).not_to_have_text(str(before), timeout=LIVE_TIMEOUT)  # counters tick without a reload
    screenshot(page, "issue5-instances-list")

    # --- pause: "Paused" with its reason
    row.get_by_role("link", name="Pinger on BTC").click()
    page.get_by_role("button", name="Pause", exact=True).click()
    status = page.locator("[data-live-status] [data-status]")
    expect(status).to_have_attribute("data-status", "paused")
    expect(status).to_contain_text("Paused")
    expect(status).to_contain_text("USER")
    expect(page.get_by_role("button", name="Resume")).to_be_visible()

    # --- a bad config value: the field error, nothing saved
    page.get_by_label("Qty").fill("50")
    page.get_by_role("button", name="Save config").click()
    expect(page.locator('[data-error-for="cfg__qty"]')).to_be_visible()
    expect(page.get_by_label("Qty")).to_have_attribute("aria-invalid", "true")

    from stratbox.instances.models import StrategyInstance
    from stratbox.trading.models import Order

    instance = StrategyInstance.objects.get(name="Pinger on BTC")
    assert instance.config == {"qty": 0.1, "every": 2}
    assert instance.mode == "active"
    assert Order.objects.filter(instance=instance, is_shadow=True).exists()
    assert Order.objects.filter(instance=instance, is_shadow=False, status="filled").exists()
    assert page.js_errors == []
