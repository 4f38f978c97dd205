"""Seed 002's gate in a real browser: a graduated paper instance -> the tenant requests live
trading -> a staff user (another browser context) approves it on the staff page -> the tenant's
page says "approved" (pushed over its websocket, no reload) and links to the new live instance.

The paper track record is written to the database with the governance suite's `graduate()` (real
round trips through `order_place` on a zero-cost paper broker); everything after that is clicks.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import make_user
from tests.frontend.conftest import screenshot
from tests.governance.conftest import graduate
from tests.trading.conftest import make_instance

pytestmark = pytest.mark.browser

PASSWORD = "a-long-test-password-1"  # tests.factories.make_user's default


@pytest.fixture(autouse=True)
def _zero_cost_paper_broker(settings: Any) -> None:
    settings.STRATBOX_PAPER_SLIPPAGE_BPS = 0
    settings.STRATBOX_PAPER_FEE_BPS = 0


def _login(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Log in")).to_have_count(0)


def test_request_approve_and_see_the_live_instance(
    page: Any, browser: Any, asgi_server: Any, user: Any, tenant: Any, paper_account: Any, market: Any
) -> None:
    from stratbox.governance.models import LiveApprovalRequest
    from stratbox.trading.models import Account

    paper = make_instance(tenant, paper_account, market, max_daily_loss=Decimal("100000"), name="SMA paper")
    graduate(paper)  # 20 trades, 75 % wins, +125, small drawdown
    live_account = Account.objects.create(tenant=tenant, name="Binance live", kind="live", broker="ccxt:test")
    make_user("staff@stratbox.test", is_staff=True)

    # --- the tenant: the graduation panel, then the request
    _login(page, user.email)
    expect(page.locator("#nav-staff")).to_have_count(0)
    page.goto(f"/instances/{paper.id}/")
    panel = page.locator("#graduation")
    expect(panel.locator("#graduation-verdict")).to_have_text("eligible for live trading")
    for code in ("TOO_FEW_TRADES", "WIN_RATE_TOO_LOW", "PNL_NOT_POSITIVE", "DRAWDOWN_TOO_HIGH"):
        expect(panel.locator(f'[data-criterion="{code}"]')).to_have_attribute("data-met", "true")
    expect(panel.locator('[data-ledger="paper"]')).to_contain_text("75.00 %")
    panel.get_by_label("Live account").select_option(str(live_account.id))
    panel.get_by_label("Note to the reviewer (optional)").fill("20 paper trades, please review")
    panel.get_by_role("button", name="Request live trading").click()
    expect(page.locator("#governance-status")).to_have_attribute("data-governance", "pending")
    expect(page.locator("#live-request-waiting")).to_be_visible()
    expect(page.locator("[data-live-indicator]").first).to_have_attribute("data-state", "live")
    request = LiveApprovalRequest.objects.get()
    assert request.status == "pending" and request.live_account_id == live_account.id

    # --- staff, in a separate browser context: the queue, the review, the approval
    staff_context = browser.new_context(base_url=asgi_server.url, viewport={"width": 1400, "height": 900})
    staff_context.set_default_timeout(10_000)
    staff = staff_context.new_page()
    staff.on("dialog", lambda dialog: dialog.accept())  # "Approve live trading for …?"
    try:
        _login(staff, "staff@stratbox.test")
        staff.locator("#nav-staff").click()
        row = staff.locator(f'tr[data-request-id="{request.id}"]')
        expect(row).to_contain_text("SMA paper")
        expect(row).to_contain_text(tenant.name)
        expect(row).to_contain_text("20 trades")
        expect(row.locator(".badge.crit-met")).to_have_text("✓ all met")
        screenshot(staff, "issue6-staff-live-requests")
        row.get_by_role("link", name="Review").click()
        expect(staff.locator("#source")).to_contain_text(request.version.sha256)
        staff.get_by_label("Reason or remark (optional)").fill("solid paper record")
        staff.get_by_role("button", name="Approve").click()
        expect(staff.locator(".message.success")).to_contain_text("Approved")
        expect(staff.locator("h1 .badge")).to_have_text("Approved")
        expect(staff.locator("#revoke-form")).to_be_visible()
        screenshot(staff, "issue6-staff-live-request-approved")
    finally:
        staff_context.close()

    request.refresh_from_db()
    assert request.status == "approved" and request.live_instance is not None
    live = request.live_instance

    # --- the tenant's open page follows the decision without a reload, then opens the live instance
    notice = page.locator("#governance-status")
    expect(notice).to_have_attribute("data-governance", "approved")
    expect(notice).to_contain_text("solid paper record")
    page.locator("#live-instance-link").click()
    expect(page).to_have_url(f"{asgi_server.url}/instances/{live.id}/")
    expect(page.locator("h1")).to_contain_text("SMA paper (live)")
    expect(page.locator("h1 .badge.account-live")).to_have_text("LIVE")
    expect(page.locator("#governance-status")).to_have_attribute("data-governance", "approved")
    expect(page.locator("#graduation")).to_have_count(0)
    assert not page.js_errors, page.js_errors
