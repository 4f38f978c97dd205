"""The in-app inbox in a real browser: notifications pushed on the tenant websocket bump the nav
badge on any logged-in page (the instance list shares its own ws/tenant/ socket) and appear at the
top of the notifications page's inbox without a reload; another tenant's never show.

Notifications are raised through the real service path (`tenant_kill_switch` -> audit hook ->
`event_emit` -> after commit `inbox_push` -> Redis channel layer -> the live server's consumer).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.factories import make_tenant, make_user

pytestmark = pytest.mark.browser

PASSWORD = "a-long-test-password-1"  # tests.factories.make_user's default
HOSTILE = '<img src=x id="pwned"> & <b>bold</b>'


def _login(page: Any, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="Log in")).to_have_count(0)


def _off_loop(fn: Any, **kwargs: Any) -> Any:
    """Call a service in its own thread, as a request or a worker would: sync Playwright runs an
    event loop in the test's thread, where the service's `async_to_sync` push must not run."""
    from django.db import connection

    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn(**kwargs))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not errors, errors
    return result[0]


# Counts, per document, the websockets the page's own scripts open (an init script runs through
# the DevTools protocol, outside the page's CSP).
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = function (url, protocols) {
    window.__sockets.push(String(url));
    return protocols === undefined ? new Native(url) : new Native(url, protocols);
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
})();
"""


def _assert_one_tenant_socket(page: Any) -> None:
    urls = page.evaluate("window.__sockets")
    assert [u for u in urls if u.endswith("/ws/tenant/")] == [urls[0]] and len(urls) == 1, urls


def _watch_hellos(page: Any) -> None:
    """Record the tenant sockets' hello frames (listeners attached as each socket opens)."""
    page.hellos = []

    def on_socket(ws: Any) -> None:
        if ws.url.endswith("/ws/tenant/"):
            ws.on("framereceived", lambda frame: page.hellos.append(ws) if '"hello"' in str(frame) else None)

    page.on("websocket", on_socket)


def _goto_live(page: Any, path: str) -> None:
    """Open `path` and wait until its tenant socket is subscribed (the server said hello)."""
    page.hellos.clear()
    page.goto(path)
    for _ in range(100):
        if page.hellos:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"no hello on ws/tenant/ from {path}")


def _mark_document(page: Any) -> None:
    page.evaluate("window.__sameDocument = true")


def _assert_same_document(page: Any) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded"


def test_inbox_badge_and_list_update_live(page: Any, user: Any, tenant: Any) -> None:
    from stratbox.engine.control import tenant_kill_switch
    from stratbox.notifications.models import NotificationEvent
    from stratbox.notifications.services import event_emit

    other_tenant = make_tenant("Other", owner=make_user("other-owner@example.test"))
    page.add_init_script(COUNT_SOCKETS)
    _watch_hellos(page)
    _login(page, user.email)

    # --- the instance list: its own ws/tenant/ socket feeds the badge (no second socket)
    _goto_live(page, "/instances/")
    expect(page.locator("[data-inbox-badge]")).to_have_count(0)  # nothing unread yet
    _mark_document(page)

    _off_loop(tenant_kill_switch, tenant=tenant, on=True, actor=user)  # our tenant: one notification
    expect(page.locator("#nav-notifications [data-inbox-badge]")).to_have_text("1")
    _off_loop(tenant_kill_switch, tenant=other_tenant, on=True, actor=other_tenant.memberships.first().user)
    _off_loop(
        event_emit,
        tenant=other_tenant,
        event_type="strategy_msg",
        title="OTHER TENANT",
        body="x",
        dedup_key="o1",
    )
    _off_loop(tenant_kill_switch, tenant=tenant, on=False, actor=user)  # ours again: the count reaches 2
    expect(page.locator("#nav-notifications [data-inbox-badge]")).to_have_text("2")
    _assert_same_document(page)
    _assert_one_tenant_socket(page)

    # --- the notifications page: app.js opens ws/tenant/ once; new items land at the top
    _goto_live(page, "/notifications/")
    items = page.locator("#inbox-items > li")
    expect(items).to_have_count(2)
    expect(page.locator("#inbox-unread")).to_have_text("2 unread")
    _mark_document(page)

    _off_loop(
        event_emit,
        tenant=other_tenant,
        event_type="strategy_msg",
        title="OTHER TENANT",
        body="x",
        dedup_key="o2",
    )
    _off_loop(
        event_emit,
        tenant=tenant,
        event_type="strategy_msg",
        title=HOSTILE,
        body=f"line 1\n{HOSTILE}",
        dedup_key="t1",
    )
    expect(items).to_have_count(3)
    first = items.first
    expect(first.locator("b")).to_have_text(HOSTILE)  # inserted as text, never parsed
    expect(first.locator("pre")).to_have_text(f"line 1\n{HOSTILE}")
    expect(first).to_have_class("unread")
    ours = NotificationEvent.objects.get(tenant=tenant, dedup_key="t1")
    expect(first).to_have_attribute("data-inbox-id", str(ours.pk))
    expect(first.locator(".badge")).to_have_text(str(ours.get_event_type_display()))
    expect(page.locator("#pwned")).to_have_count(0)
    expect(page.locator("#nav-notifications [data-inbox-badge]")).to_have_text("3")
    expect(page.locator("#inbox-unread")).to_have_text("3 unread")
    # The other tenant's items (pushed before and after ours) never reached this page.
    expect(page.get_by_text("OTHER TENANT")).to_have_count(0)
    _assert_same_document(page)
    _assert_one_tenant_socket(page)
    assert page.js_errors == []


def test_empty_inbox_gets_its_first_item(page: Any, user: Any, tenant: Any) -> None:
    from stratbox.notifications.services import event_emit

    _watch_hellos(page)
    _login(page, user.email)
    _goto_live(page, "/notifications/")
    expect(page.locator("[data-inbox-empty]")).to_have_text("Nothing yet.")
    expect(page.locator("[data-inbox-badge]")).to_have_count(0)

    _off_loop(
        event_emit, tenant=tenant, event_type="strategy_msg", title="First one", body="hello", dedup_key="f1"
    )
    expect(page.locator("#inbox-items > li")).to_have_count(1)
    expect(page.locator("#inbox-items > li b")).to_have_text("First one")
    expect(page.locator("[data-inbox-empty]")).to_have_count(0)
    expect(page.locator("#nav-notifications [data-inbox-badge]")).to_have_text("1")
    assert page.js_errors == []
