"""Issue 2's web flow in a real browser against the real ASGI app:
sign up -> upload a strategy with a syntax error (seen at its line) -> fix it -> create an
instance -> see it in the list. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.frontend.conftest import screenshot

pytestmark = pytest.mark.browser

GOOD_SOURCE = """from sandbox.sdk import Strategy


class SmaCross(Strategy):
    CONFIG_SCHEMA = {
        "window": {"type": "int", "default": 20, "min": 2, "max": 200, "description": "SMA window"},
        "side": {"type": "choice", "choices": ["long", "short"], "default": "long", "description": "Direction"},
    }

    def init(self):
        return {"prices": []}

    def on_tick(self, tick):
        prices = self.state["prices"]
        prices.append(tick.price)
        if len(prices) > self.config["window"]:
            prices.pop(0)

    def render(self):
        return {"widgets": []}
"""
BROKEN_LINE = 13
BROKEN_SOURCE = GOOD_SOURCE.replace("    def on_tick(self, tick):", "    def on_tick(self, tick)")
assert BROKEN_SOURCE.splitlines()[BROKEN_LINE - 1] == "    def on_tick(self, tick)"


def _paper_account_for(email: str) -> Any:
    """The new tenant's paper account (created here if signup does not create one yet)."""
    from stratbox.trading.models import Account
    from tenants.models import Membership

    tenant = Membership.objects.select_related("tenant").get(user__email=email).tenant
    account = Account.objects.filter(tenant=tenant, kind="paper").first()
    return account or Account.objects.create(
        tenant=tenant, name="Paper", kind="paper", starting_balance=Decimal("10000"), balance=Decimal("10000")
    )


def test_signup_upload_fix_create_instance_list(page: Any, market: Any) -> None:
    email = "trader@example.test"
    password = "a-long-browser-password-7"

    # --- sign up (email verification is off in tests, as on a laptop)
    page.goto("/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (again)").fill(password)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/instances/$"))
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    account = _paper_account_for(email)

    # --- upload with a syntax error: the error is shown at its line
    page.get_by_role("link", name="Strategies", exact=True).click()
    page.get_by_role("link", name="Upload a strategy").click()
    expect(page.locator("#allowed-imports")).to_contain_text("math")
    page.get_by_label("Key").fill("my-sma")
    page.get_by_label("Name").fill("My SMA cross")
    page.get_by_label("Strategy file (.py)").set_input_files(
        {"name": "my_sma.py", "mimeType": "text/x-python", "buffer": BROKEN_SOURCE.encode()}
    )
    page.get_by_role("button", name="Upload strategy").click()
    errors = page.locator("#validation-errors")
    expect(errors).to_be_visible()
    expect(errors.locator(f'[data-issue-line="{BROKEN_LINE}"]')).to_contain_text(f"line {BROKEN_LINE}")
    bad_line = page.locator(f"#line-source-{BROKEN_LINE}")
    expect(bad_line).to_have_class(re.compile("has-error"))
    expect(bad_line).to_contain_text("def on_tick(self, tick)")
    screenshot(page, "issue2-upload-syntax-error")

    # --- fix it in the editor the error page filled with the submitted code, and upload again
    # (a CodeMirror editor; the form's hidden textarea carries its value)
    expect(page.locator('textarea[name="source"]')).to_have_value(BROKEN_SOURCE)
    editor = page.get_by_label("…or paste the source")
    expect(editor).to_contain_text("def on_tick(self, tick)")
    editor.fill(GOOD_SOURCE)
    page.get_by_role("button", name="Upload strategy").click()
    expect(page.get_by_role("heading", name=re.compile("my-sma"))).to_be_visible()
    expect(page.locator('[data-version="1"]')).to_be_visible()

    # --- create an instance: the config form is generated from the version's CONFIG_SCHEMA
    page.get_by_role("link", name="Create instance").click()
    expect(page.get_by_label("Strategy", exact=True)).to_have_value("my-sma")
    window = page.get_by_label("Window")
    expect(window).to_have_value("20")
    expect(window).to_have_attribute("min", "2")
    expect(page.get_by_label("Side")).to_have_value("long")
    page.get_by_label("Name").fill("SMA on BTC")
    page.get_by_label("Account").select_option(str(account.id))
    page.get_by_label("Market").select_option(str(market.id))
    window.fill("500")  # out of range: refused by the form and the service, shown at the field
    page.get_by_role("button", name="Create instance").click()
    expect(page.locator('[data-error-for="cfg__window"]')).to_be_visible()
    page.get_by_label("Window").fill("30")
    page.get_by_label("Run every (seconds)").fill("10")
    page.get_by_role("button", name="Create instance").click()
    expect(page.get_by_role("heading", name=re.compile("SMA on BTC"))).to_be_visible()
    expect(page.locator("#identity")).to_contain_text("my-sma")
    screenshot(page, "issue2-instance-detail")

    # --- and it is in the list, off, on paper, with its schedule
    page.get_by_role("link", name="Instances", exact=True).click()
    row = page.locator("#instances tbody tr").filter(has_text="SMA on BTC")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("my-sma")
    expect(row).to_contain_text("PAPER")
    expect(row.locator("[data-mode]")).to_have_text("Off")
    expect(row).to_contain_text("Runs every 10 seconds")
    screenshot(page, "issue2-instances-list")

    from stratbox.instances.models import StrategyInstance

    instance = StrategyInstance.objects.get(name="SMA on BTC")
    assert instance.config == {"window": 30, "side": "long"}
    assert (instance.version.number, instance.account_id, instance.frequency_seconds) == (1, account.id, 10)
    assert page.js_errors == []
