"""The Django admin: tenants never get in; staff never see live-account credentials in clear.

Generated from `admin.site._registry`: every registered model's changelist, add page and the change
page of one of A's rows (where A has one) is refused to every tenant user (owners included),
with nothing changed. The staff admin's pages for A's live account, its audit events and its
live-trading request show neither the secrets nor the ciphertext.
"""

from __future__ import annotations

from django.contrib import admin
from django.test import Client

from tests.factories import make_user
from tests.security.conftest import A_SECRET, Side, body_text, fingerprint, fingerprint_diff


def admin_urls(side: Side) -> list[str]:
    """Changelist, add, and the change/history/delete pages of one of A's rows per model."""
    urls = ["/admin/"]
    for model in admin.site._registry:
        base = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        urls += [base, f"{base}add/"]
        names = {f.name for f in model._meta.get_fields()}
        row = model._default_manager.filter(tenant=side.tenant).first() if "tenant" in names else None
        if row is not None:
            urls += [f"{base}{row.pk}/change/", f"{base}{row.pk}/history/", f"{base}{row.pk}/delete/"]
    return urls


def test_tenant_users_get_no_admin_access(side_a: Side, side_b: Side) -> None:
    urls = admin_urls(side_a)
    assert len(urls) > 40
    users = {
        "B owner": side_b.owner,
        "A owner": side_a.owner,
        "A viewer": side_a.objects["viewer_user"],
    }
    clients = {}
    for who, user in users.items():  # logging in writes a session and last_login: before the fingerprint
        clients[who] = Client()
        clients[who].force_login(user)
    before = fingerprint()
    failures: list[str] = []
    for who, client in clients.items():
        for url in urls:
            for method in ("get", "post"):
                response = getattr(client, method)(url)
                # Not staff: the admin sends everyone to its login page and shows nothing.
                if response.status_code != 302 or "/admin/login/" not in response["Location"]:
                    failures.append(f"{who} {method.upper()} {url}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert not fingerprint_diff(before, fingerprint())


def test_staff_without_permissions_sees_and_deletes_nothing(side_a: Side) -> None:
    """Staff rights come from Django's model permissions; `is_staff` alone opens the admin, no model."""
    client = Client()
    client.force_login(make_user("ops.plain@stratbox.test", is_staff=True))
    before = fingerprint()
    failures = []
    for url in admin_urls(side_a)[1:]:
        for method in ("get", "post"):
            body = {"post": "yes"} if url.endswith("/delete/") else {}
            status = getattr(client, method)(url, body).status_code
            if status not in (403, 404):
                failures.append(f"{method.upper()} {url}: {status}")
    assert not failures, "\n".join(failures)
    assert not fingerprint_diff(before, fingerprint())


def test_staff_admin_never_shows_live_credentials(side_a: Side) -> None:
    from stratbox.trading.models import Account
    from tenants.models import AuditEvent

    superuser = make_user("ops.super@stratbox.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    live = Account.objects.get(pk=side_a.objects["live"].pk)
    assert live.credentials_ciphertext and live.credentials_hint
    request = side_a.objects["live_request"]
    event = AuditEvent.objects.get(action="account.create", target_id=str(live.pk))
    pages = [
        f"/admin/trading/account/{live.pk}/change/",
        "/admin/trading/account/",
        f"/admin/trading/account/?q={live.name}",
        f"/admin/tenants/auditevent/{event.pk}/change/",
        "/admin/tenants/auditevent/",
        f"/admin/governance/liveapprovalrequest/{request.pk}/change/",
        f"/admin/tenants/tenant/{side_a.tenant.pk}/change/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        html = body_text(response)
        for secret in A_SECRET.values():
            assert secret not in html, (url, "secret in clear")
        assert live.credentials_ciphertext not in html, (url, "ciphertext shown")
        assert 'name="credentials_ciphertext"' not in html, url
    change = body_text(client.get(pages[0]))
    assert live.credentials_hint.replace("•", "&bull;") in change or live.credentials_hint in change
    # Saving the change form (staff tuning the fill model) keeps the credentials as they were.
    response = client.post(
        pages[0],
        {
            "tenant": str(side_a.tenant.pk),
            "name": live.name,
            "kind": "live",
            "currency": "USD",
            "starting_balance": "5000.00",
            "slippage_bps": "1.5",
            "fee_bps": "",
            "broker": "ccxt:test",
            # the order model's per-account fill settings (shown and tunable like slippage and fee)
            "fill_timing": "next_open",
            "fee_fixed": "0.25",
            "leverage": "2",
        },
    )
    assert response.status_code == 302, body_text(response)[:2000]
    after = Account.objects.get(pk=live.pk)
    assert after.credentials_ciphertext == live.credentials_ciphertext
    assert str(after.slippage_bps) == "1.50"
    assert (after.fill_timing, str(after.fee_fixed), str(after.leverage), after.allow_short) == (
        "next_open",
        "0.2500",
        "2.00",
        False,
    )
