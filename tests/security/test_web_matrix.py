"""The web UI's routes, generated from the URLconf: B's browser session on A's objects.

Every page or form under the web UI that takes an object id gets A's ids from B's logged-in
session (GET and POST): 404 exactly as for a missing id (staff pages: refused), none of A's
identifiers in the page, the database and Redis unchanged.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.test import Client

from tests.security.conftest import Side, a_identifiers, body_text, fingerprint, fingerprint_diff, leaks
from tests.security.routes import routes
from tests.security.test_tenant_matrix import combinations

NOT_WEB = ("api/", "admin/", "accounts/", "healthz")
FREE = {"action": "approve", "number": 1}


def web_values(side: Side) -> dict[str, list[Any]]:
    o = side.objects
    return {
        "strategy_id": [o["strategy"].pk],
        "instance_id": [o["instance"].pk, o["active"].pk],
        "backtest_id": [o["backtest"].pk],
        "membership_id": [o["member"].pk, o["owner"].pk],
        "token_id": [o["member_token"].pk],
        "token": [o["invitation_token"]],  # an invitation link of A's
        "position_id": [o["position"].pk],
        "request_id": [o["live_request"].pk],
        "channel_id": [o["channel"].pk],
        "account_id": [o["live"].pk, o["paper"].pk],
        "action": ["approve"],
        "number": [1],
    }


def test_b_session_gets_404_on_every_page_of_a(side_a: Side, side_b: Side) -> None:
    web = [r for r in routes("") if r.params and not r.route.startswith(NOT_WEB)]
    assert len(web) >= 15
    values = web_values(side_a)
    unknown = {name for r in web for name, _ in r.params if name not in values}
    assert not unknown, f"new web path parameters: add A's objects for {unknown}"
    client = Client()
    client.force_login(side_b.owner)
    client.get("/")  # the session picks its tenant
    identifiers = a_identifiers(side_a)
    failures: list[str] = []
    for route in web:
        before = fingerprint()
        for combo in combinations(route, values):
            missing = {
                n: (combo[n] if n in FREE else (987_654_321 if conv == "int" else uuid.uuid4()))
                for n, conv in route.params
            }
            for method in ("get", "post"):
                response = getattr(client, method)(
                    route.url(combo), {"mode": "active", "reason": "x", "role": "owner"}
                )
                other = getattr(client, method)(
                    route.url(missing), {"mode": "active", "reason": "x", "role": "owner"}
                )
                label = f"{method.upper()} {route.url(combo)}"
                staff = route.route.startswith("staff/")
                allowed = {302, 403, 404, 405} if staff else {404, 405}
                if response.status_code not in allowed:
                    failures.append(f"{label}: {response.status_code}")
                if response.status_code != other.status_code:
                    failures.append(
                        f"{label}: {response.status_code} but {other.status_code} for a missing id"
                    )
                hits = leaks(body_text(response), identifiers - {str(v) for v in combo.values()})
                if hits:
                    failures.append(f"{label}: leaks {hits[:3]}")
        changed = [t for t in fingerprint_diff(before, fingerprint()) if t not in ("sessions.session",)]
        if changed:
            failures.append(f"{route}: changed {changed}")
    assert not failures, "\n".join(failures)
