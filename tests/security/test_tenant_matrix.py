"""Generated cross-tenant matrix over every route under /api/v1/ (issue 2, "cross-tenant matrix").

Tenant A has one of everything (strategy + version, instances, paper and live accounts with
credentials, shadow/filled/rejected orders, fills, positions, a run, backtests, a live-approval
request, members, tokens, audit events); tenant B has its own and an owner's token. The routes
come from the URL resolver and the bodies from the OpenAPI schema, so a new endpoint is attacked
without editing this file. For each route with a path parameter, B calls every method with A's
ids and must get exactly what it gets for an id that does not exist (404, or 405 where the view
has no such method), never one of A's identifiers, names or emails, and the database and Redis
must be unchanged. Lists and id filters show B nothing of A; staff routes refuse tenants; A's
viewers are refused every write.
"""

from __future__ import annotations

import itertools
import re
import uuid
from typing import Any

from tests.factories import client_for
from tests.security.conftest import (
    MARKER,
    Side,
    a_identifiers,
    body_text,
    fingerprint,
    fingerprint_diff,
    json_or_none,
    leaks,
)
from tests.security.routes import SAFE, Route, query_parameters, request_body, routes

API = "api/v1/"
ALL_METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
# Shared by every tenant (the market catalog): B may read it, nobody writes it through the API.
SHARED_PARAMS = {"market_id"}
# Writes a user makes for themself, outside any tenant's role: accepting an invitation sent to
# their own email (tests/tenants/test_members_api.py checks it accepts only that address's link).
USER_LEVEL_WRITES = {"/api/v1/invitations/accept/"}
# Path parameters that are not an object of their own (a version number inside A's strategy).
FREE_PARAMS = {"number": 1}


def path_values(side: Side) -> dict[str, list[Any]]:
    """Which of a tenant's objects each path parameter name takes (every kind, where there are several)."""
    o = side.objects
    return {
        "token_id": [o["member_token"].pk],
        "membership_id": [o["member"].pk, o["owner"].pk],
        "event_id": [o["event"].pk],
        "strategy_id": [o["strategy"].pk],
        "instance_id": [o["instance"].pk, o["active"].pk],
        "account_id": [o["paper"].pk, o["live"].pk],
        "order_id": [o["shadow_order"].pk, o["filled_order"].pk, o["rejected_order"].pk],
        "backtest_id": [o["backtest"].pk, o["finished_backtest"].pk],
        "dataset_id": [o["dataset"].pk],
        "run_id": [o["run"].pk],
        "request_id": [o["live_request"].pk],
        "market_id": [o["instance"].market_id],
        "artifact_id": [o["artifact"].pk],
        "channel_id": [o["channel"].pk],
    }


def body_values(side: Side) -> dict[str, Any]:
    """Request-body values by field name: a tenant's own objects, and values the services accept."""
    o = side.objects
    return {
        "account": str(o["paper"].pk),
        "live_account": str(o["live"].pk),
        "instance": str(o["instance"].pk),
        "version": str(o["version"].pk),
        "strategy": o["strategy"].key,
        "market": o["instance"].market_id,
        "tenant_id": str(side.tenant.pk),
        "mode": "active",
        "on": False,
        "active": True,
        "role": "owner",
        "reason": "matrix",
        "name": "bravo renamed",
        "config": {"window": 30},
        "email": side.objects["viewer_user"].email,
        "channel": str(o["channel"].pk),
        "event_type": "plugin_alert",
        "level": "off",
        "url": "json://127.0.0.1:9/bravo-hook",
        "enabled": False,
        "ids": [o["notification"].pk],
    }


def missing_value(name: str, converter: str) -> Any:
    """An id of the right shape that names nothing."""
    return (
        987_654_321 if converter == "int" or name in {"membership_id", "event_id", "run_id"} else uuid.uuid4()
    )


def combinations(route: Route, values: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = [name for name, _ in route.params]
    pools = [values[n] if n in values else [FREE_PARAMS[n]] for n in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*pools)]


def call(client: Any, method: str, url: str, body: dict[str, Any] | None) -> Any:
    if method in SAFE or method == "DELETE":
        return client.generic(method, url)
    return client.generic(
        method, url, data=__import__("json").dumps(body or {}), content_type="application/json"
    )


def normalised(response: Any, replacements: dict[str, str]) -> tuple[int, str]:
    text = body_text(response)
    for value, placeholder in replacements.items():
        text = text.replace(value, placeholder)
    return response.status_code, text


def object_routes() -> list[Route]:
    return [r for r in routes(API) if r.params]


def expected_status(route: Route, method: str) -> set[int] | None:
    """What B must get for A's object (None: OPTIONS, checked by comparison only)."""
    if route.staff_only:
        return {403}
    if method == "OPTIONS":
        return None
    handled = route.handled
    wanted = "GET" if method == "HEAD" else method
    if handled is not None and wanted not in handled:
        return {405}
    if {n for n, _ in route.params} & SHARED_PARAMS:
        return {200} if method in SAFE else {404, 405}
    return {404} if handled is not None else {404, 405}


# --- coverage ------------------------------------------------------------------------------------------


def test_every_api_route_is_in_the_matrix(side_a: Side) -> None:
    """Every path parameter under /api/v1/ takes one of A's objects; schema and resolver agree."""
    known = set(path_values(side_a)) | set(FREE_PARAMS)
    api_routes = routes(API)
    unknown = sorted({f"{r}: {name}" for r in api_routes for name, _ in r.params if name not in known})
    assert not unknown, f"new path parameters: add A's object for each to path_values(): {unknown}"
    from tests.security.routes import project_schema

    documented = {p for p in project_schema()["paths"] if p.startswith("/api/v1/")}
    resolved = {r.template for r in api_routes}
    assert documented <= resolved, documented - resolved
    assert len(object_routes()) >= 30 and any(r.staff_only for r in api_routes)


# --- B on A's objects ----------------------------------------------------------------------------------


def test_b_gets_404_on_every_object_of_a_and_changes_nothing(side_a: Side, side_b: Side) -> None:
    identifiers = a_identifiers(side_a)
    a_values, b_body = path_values(side_a), body_values(side_b)
    failures: list[str] = []
    calls = 0
    for route in object_routes():
        before = fingerprint()
        for values in combinations(route, a_values):
            missing = {
                name: (
                    values[name]
                    if name in FREE_PARAMS or name in SHARED_PARAMS
                    else missing_value(name, conv)
                )
                for name, conv in route.params
            }
            url, missing_url = route.url(values), route.url(missing)
            swap = {str(values[n]): "{" + n + "}" for n in values if len(str(values[n])) >= 6}
            swap_missing = {str(missing[n]): "{" + n + "}" for n in missing if len(str(missing[n])) >= 6}
            for method in ALL_METHODS:
                body = request_body(route, method, b_body)
                response = call(side_b.client, method, url, body)
                calls += 1
                label = f"{method} {url}"
                expected = expected_status(route, method)
                if expected is not None and response.status_code not in expected:
                    failures.append(
                        f"{label}: {response.status_code} (want {sorted(expected)}) {body_text(response)[:200]}"
                    )
                hits = leaks(body_text(response), identifiers - {str(v) for v in values.values()})
                if hits:
                    failures.append(f"{label}: leaks {hits}")
                if str(side_a.tenant.pk) in body_text(response):
                    failures.append(f"{label}: names A's tenant")
                # Existence oracle: A's id must look exactly like an id that does not exist.
                other = call(side_b.client, method, missing_url, body)
                if normalised(response, swap) != normalised(other, swap_missing):
                    failures.append(
                        f"{label}: differs from a missing id: {response.status_code} {body_text(response)[:150]!r}"
                        f" vs {other.status_code} {body_text(other)[:150]!r}"
                    )
        changed = fingerprint_diff(before, fingerprint())
        if changed:
            failures.append(f"{route}: B's calls changed {changed}")
    assert calls > 300
    assert not failures, "\n".join(failures)


def test_b_lists_never_show_a(side_a: Side, side_b: Side) -> None:
    identifiers = a_identifiers(side_a)
    o = side_a.objects
    a_int_ids = {
        "/api/v1/members/": {o["owner"].pk, o["member"].pk, o["viewer"].pk},
        "/api/v1/audit-events/": set(
            o["event"].__class__.objects.filter(tenant=side_a.tenant).values_list("pk", flat=True)
        ),
        "/api/v1/runs/": {o["run"].pk},
        "/api/v1/fills/": {o["fill"].pk},
    }
    failures: list[str] = []
    non_empty = 0
    for route in routes(API):
        if route.params or (route.handled is not None and "GET" not in route.handled) or route.staff_only:
            continue
        response = side_b.client.get(route.url({}), {"limit": 1000})
        if response.status_code == 400 and "compare" in route.route:
            continue  # needs ids: covered by the filter test
        if response.status_code != 200:
            failures.append(f"{route}: {response.status_code}")
            continue
        hits = leaks(body_text(response), identifiers)
        if hits:
            failures.append(f"{route}: leaks {hits}")
        data = json_or_none(response)
        rows = data.get("results") if isinstance(data, dict) else None
        if rows:
            non_empty += 1
            listed = {row.get("id") for row in rows if isinstance(row, dict)}
            if listed & a_int_ids.get(route.template, set()):
                failures.append(f"{route}: lists A's rows {listed & a_int_ids[route.template]}")
    assert not failures, "\n".join(failures)
    assert non_empty >= 10  # B has data of its own: the lists were not vacuously clean


def id_filter_values(side: Side) -> dict[str, list[Any]]:
    """Query parameters that take an object: A's values for each."""
    o = side.objects
    return {
        "instance": [o["instance"].pk, o["active"].pk],
        "account": [o["paper"].pk, o["live"].pk],
        "order": [o["filled_order"].pk],
        "strategy": [o["strategy"].key],
        "version": [o["version"].pk],
        "backtest": [o["backtest"].pk],
        "run": [o["run"].pk],
        "request": [o["live_request"].pk],
        "live_account": [o["live"].pk],
        "target_id": [o["instance"].pk, o["member_token"].pk, o["paper"].pk],
        "channel": [o["channel"].pk],
        "event": [o["notification"].pk],
        "a": [o["finished_backtest"].pk],
        "b": [o["finished_backtest"].pk],
    }


def test_id_filters_find_nothing_of_a(side_a: Side, side_b: Side) -> None:
    """Every documented id filter with A's id is empty (or a 4xx); undocumented ones leak nothing either."""
    identifiers = a_identifiers(side_a)
    a_filters = id_filter_values(side_a)
    b_backtest = side_b.objects["finished_backtest"].pk
    failures: list[str] = []
    documented_probes = 0
    for route in routes(API):
        if route.params or route.staff_only or (route.handled is not None and "GET" not in route.handled):
            continue
        documented = set(query_parameters(route))
        for name, values in a_filters.items():
            for value in values:
                query = {name: str(value), "limit": 1000}
                if name in {"a", "b"}:  # compare: one of B's own next to one of A's
                    query = {"a": str(b_backtest), "b": str(b_backtest), name: str(value)}
                response = side_b.client.get(route.url({}), query)
                text = body_text(response)
                label = f"GET {route}?{name}={value}"
                hits = leaks(text, identifiers - {str(value)})
                if hits or response.status_code >= 500:
                    failures.append(f"{label}: {response.status_code} leaks {hits}")
                if name not in documented:
                    continue
                documented_probes += 1
                data = json_or_none(response)
                if response.status_code == 200 and not (isinstance(data, dict) and data.get("results") == []):
                    failures.append(f"{label}: 200 with {text[:200]}")
                elif response.status_code not in (200, 400, 404):
                    failures.append(f"{label}: {response.status_code}")
    assert documented_probes >= 15
    assert not failures, "\n".join(failures)


# --- B's own writes that name A's objects ----------------------------------------------------------------


def test_b_cannot_point_its_own_writes_at_a_objects(side_a: Side, side_b: Side) -> None:
    """Every write whose body names an object gets A's id in that field: refused, nothing created."""
    a_refs = {
        "channel": str(side_a.objects["channel"].pk),
        "account": str(side_a.objects["paper"].pk),
        "live_account": str(side_a.objects["live"].pk),
        "instance": str(side_a.objects["instance"].pk),
        "version": str(side_a.objects["version"].pk),
        "strategy": side_a.objects["strategy"].key,
        "tenant_id": str(side_a.tenant.pk),
    }
    b_body, b_paths = body_values(side_b), {k: v[0] for k, v in path_values(side_b).items()}
    identifiers = a_identifiers(side_a)
    failures: list[str] = []
    probes = 0
    for route in routes(API):
        if route.staff_only or route.handled is None:
            continue
        url = route.url({**b_paths, **FREE_PARAMS})
        for method in sorted(route.handled - {"GET", "DELETE"}):
            body = request_body(route, method, b_body)
            for field_name, foreign in a_refs.items():
                if field_name not in body:
                    continue
                probes += 1
                before = fingerprint()
                response = call(side_b.client, method, url, {**body, field_name: foreign})
                label = f"{method} {url} {field_name}=A's"
                if response.status_code < 400 or response.status_code >= 500:
                    failures.append(f"{label}: {response.status_code} {body_text(response)[:200]}")
                hits = leaks(body_text(response), identifiers - {foreign})
                if hits:
                    failures.append(f"{label}: leaks {hits}")
                changed = fingerprint_diff(before, fingerprint())
                if changed:
                    failures.append(f"{label}: changed {changed}")
    # Instances, backtests (version, instance), live requests and instance updates at least.
    assert probes >= 6, probes
    assert not failures, "\n".join(failures)


# --- staff routes and viewers -------------------------------------------------------------------------


def test_staff_routes_refuse_every_tenant_user(side_a: Side, side_b: Side) -> None:
    from stratbox.governance.models import LiveApprovalRequest

    a_viewer = client_for(side_a.objects["viewer_user"], side_a.tenant)
    clients = {"B owner": side_b.client, "A owner": side_a.client, "A viewer": a_viewer}
    a_values = path_values(side_a)
    before = fingerprint()
    failures: list[str] = []
    staff = [r for r in routes(API) if r.staff_only]
    assert len(staff) >= 5
    for route in staff:
        for values in combinations(route, a_values) or [{}]:
            for who, client in clients.items():
                for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                    response = call(client, method, route.url(values), {"reason": "matrix"})
                    if response.status_code != 403:
                        failures.append(f"{who} {method} {route.url(values)}: {response.status_code}")
    assert not failures, "\n".join(failures)
    assert not fingerprint_diff(before, fingerprint())
    assert LiveApprovalRequest.objects.get(pk=side_a.objects["live_request"].pk).status == "pending"


def test_viewers_of_a_get_403_on_every_write_of_a(side_a: Side, side_b: Side) -> None:
    viewer = client_for(side_a.objects["viewer_user"], side_a.tenant)
    a_values = path_values(side_a)
    a_body = body_values(side_a)
    failures: list[str] = []
    writes = 0
    before = fingerprint()
    for route in routes(API):
        if route.template in USER_LEVEL_WRITES:
            continue  # the caller's own act as a user, in no tenant: covered by its own tests
        handled = route.handled if route.handled is not None else {"POST", "PUT", "PATCH", "DELETE"}
        for values in combinations(route, a_values) or [{}]:
            if {n for n, _ in route.params} & SHARED_PARAMS:
                continue
            for method in sorted(handled - SAFE):
                writes += 1
                response = call(viewer, method, route.url(values), request_body(route, method, a_body))
                if response.status_code != 403:
                    failures.append(
                        f"{method} {route.url(values)}: {response.status_code} {body_text(response)[:200]}"
                    )
    changed = fingerprint_diff(before, fingerprint())
    assert writes >= 40
    assert not failures, "\n".join(failures)
    assert not changed, changed


def test_the_attacker_is_really_an_owner_with_data(side_a: Side, side_b: Side) -> None:
    """Guard against a vacuous matrix: B's token works, B reads its own objects, A's objects are real."""
    for route, values in ((r, path_values(side_b)) for r in object_routes() if not r.staff_only):
        if route.handled and "GET" in route.handled:
            for combo in combinations(route, values)[:1]:
                response = side_b.client.get(route.url(combo))
                # Reads of one's own objects succeed (409: rendering needs a loaded instance).
                assert response.status_code in (200, 409), (
                    route,
                    response.status_code,
                    body_text(response)[:300],
                )
    assert MARKER in side_a.tenant.name.lower()
    assert re.fullmatch(r"[0-9a-f-]{36}", str(side_a.objects["live"].pk))
    assert side_a.objects["live"].has_credentials
