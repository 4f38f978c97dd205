"""The dashboard passes its own Content-Security-Policy in a real Chromium: no page of the first
hour (login, instances with live widgets and websockets, strategies, backtests, settings) triggers
a single violation report."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.engine.conftest import COUNTER, make_instance, make_version, set_quote
from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.browser

PASSWORD = "a-long-test-password-1"
COLLECT = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def test_dashboard_pages_raise_no_csp_violation(page: Any, asgi_server: Any, market: Any) -> None:
    from stratbox.trading.models import Account

    user = make_user("csp@example.test")
    tenant = make_tenant("CSP desk", owner=user)
    account = Account.objects.create(tenant=tenant, name="Paper", kind="paper")
    instance = make_instance(make_version(tenant, COUNTER, key="counter"), account, market)
    set_quote(market)
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.add_init_script(COLLECT)

    response = page.goto("/accounts/login/")
    header = response.headers["content-security-policy"]
    assert "script-src 'self'" in header and "frame-ancestors 'none'" in header
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Instances")).to_be_visible()

    seen: dict[str, list[str]] = {}
    for path in (
        "/",
        f"/instances/{instance.pk}/",
        "/strategies/",
        "/strategies/upload/",
        "/backtests/",
        "/backtests/new/",
        "/settings/",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        seen[path] = page.evaluate("window.__csp")
    # The instance page's websocket connected under connect-src 'self'.
    page.goto(f"/instances/{instance.pk}/")
    expect(page.locator("[data-live-indicator]").first).to_have_attribute("data-state", "live")
    seen["live"] = page.evaluate("window.__csp")

    assert all(not violations for violations in seen.values()), seen
    assert not [line for line in console if "Content Security Policy" in line], console
    assert page.js_errors == []
