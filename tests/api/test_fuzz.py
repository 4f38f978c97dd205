"""Schema-driven fuzzing (schemathesis) of the finished apps' API, in-process and offline.

Every operation of the OpenAPI schema (every app: tenants, store, markets, instances, trading incl.
live accounts, engine, backtests, governance incl. the staff queue) gets generated requests (valid
ones and schema-violating ones), sent through Django's real WSGI stack with a real Bearer token of
a tenant that has data (a strategy, instances, paper and live accounts, orders, fills, positions,
a run, backtests, a live-trading request).
Checks on every response: never a 5xx; the status code, content type and body conform to the
schema; every 4xx is the API's one error body. Some path parameters are replaced by ids that
exist, so the generated bodies reach the services, not only the 404 branch. A last test sends
NUL bytes and huge strings to every write.

Bounded and derandomized (fixed examples per operation, no example database) so the suite is
reproducible and stays well under two minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.utils import timezone
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from tenants.models import AuditEvent
from tenants.scopes import ALL_SCOPES
from tests.api.openapi import InTransactionWsgiApp, finished_schema
from tests.factories import add_member, client_for, make_tenant, make_user
from tests.trading.conftest import Intents, make_instance, make_quote, place

TICK_SOURCE = """
from sandbox.sdk import Strategy


class Fuzzed(Strategy):
    CONFIG_SCHEMA = {"window": {"type": "int", "default": 20, "min": 2, "max": 500}}

    def init(self):
        self.state["n"] = 0

    def on_tick(self, tick):
        self.state["n"] += 1

    def render(self):
        return []
"""

# Generated requests per operation and generation mode; uploads compile in a sandbox host each.
EXAMPLES = 12
UPLOAD_EXAMPLES = 5
UPLOAD_OPERATIONS = {"POST /api/v1/strategies/", "POST /api/v1/strategies/{strategy_id}/versions/"}

EXCLUDED: set[str] = set()


SCHEMA = schemathesis.openapi.from_dict(finished_schema())
OPERATIONS = sorted(
    {f"{result.ok().method.upper()} {result.ok().path}" for result in SCHEMA.get_all_operations()} - EXCLUDED
)

CHECKS = [
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """Django's WSGI app inside the test's transaction (see InTransactionWsgiApp)."""
    app = InTransactionWsgiApp()
    try:
        yield app
    finally:
        app.reconnect()


@pytest.fixture
def world(
    api_client: Any, user: Any, tenant: Any, paper_account: Any, market: Any, other_tenant: Any, settings: Any
) -> dict[str, Any]:
    """A tenant with some of everything, reached through a real token created by the API."""
    from cryptography.fernet import Fernet

    from stratbox.backtests.models import Backtest, BacktestTrade
    from stratbox.engine.models import Run
    from stratbox.governance.models import LiveApprovalRequest
    from stratbox.markets.quotes import quote_set
    from stratbox.trading.services.accounts import account_create
    from strategies_store.services import strategy_create

    settings.STRATBOX_CREDENTIALS_KEYS = [Fernet.generate_key().decode()]

    token = api_client.post(
        "/api/v1/tokens/", {"name": "fuzz", "scopes": list(ALL_SCOPES)}, format="json"
    ).json()
    version = strategy_create(
        tenant=tenant,
        author=user,
        key="fuzzed",
        name="Fuzzed",
        description="",
        style="tick",
        thesis="",
        source=TICK_SOURCE,
        exit_source=None,
        config=None,
        notes="",
    )
    instance = make_instance(tenant, paper_account, market, mode="observe")
    intents = Intents(instance)
    place(instance, intents("buy", 2.0), make_quote(market, 100), mode="observe")
    quote_set(market.pk, make_quote(market, 101))
    member = add_member(tenant, role="member", user=make_user())
    order = instance.orders.first()
    event = AuditEvent.objects.filter(tenant=tenant).first()
    live = account_create(
        tenant=tenant,
        actor=user,
        name="Live",
        starting_balance=Decimal("1000"),
        kind="live",
        broker="ccxt:test",
        credentials={"api_key": "fuzz-key-0001", "api_secret": "fuzz-secret-0002"},
    )
    now = timezone.now()
    run = Run.objects.create(
        tenant=tenant, instance=instance, trigger="manual", status="ok", started_at=now, finished_at=now
    )
    backtest = Backtest.objects.create(
        tenant=tenant,
        version=version,
        version_sha256=version.sha256,
        strategy_key="fuzzed",
        style="tick",
        source="bars",
        market=market,
        status="succeeded",
        equity_curve=[[1.0, 10000.0]],
    )
    BacktestTrade.objects.create(
        backtest=backtest, seq=1, side="long", qty=1.0, entry_ts=1.0, entry_price=100.0
    )
    request = LiveApprovalRequest.objects.create(
        tenant=tenant,
        instance=instance,
        instance_name=instance.name,
        live_account=live,
        version=instance.version,
        config={},
        config_hash="0" * 64,
        track_record={},
        criteria={},
    )
    return {
        "headers": {"Authorization": f"Bearer {token['token']}"},
        "path": {
            "token_id": token["id"],
            "membership_id": member.pk,
            "event_id": event.pk,
            "strategy_id": str(version.definition_id),
            "number": version.number,
            "instance_id": str(instance.pk),
            "account_id": str(paper_account.pk),
            "order_id": str(order.pk) if order else "x",
            "market_id": market.pk,
            "backtest_id": str(backtest.pk),
            "run_id": run.pk,
            "request_id": str(request.pk),
        },
        "body": {
            "strategy": "fuzzed",
            "account": str(paper_account.pk),
            "live_account": str(live.pk),
            "market": market.pk,
            "version": version.number,
            "instance": str(instance.pk),
        },
        # Where a field of the same name means something else (a backtest's `version` is a UUID).
        "body_by_path": {"/api/v1/backtests/": {"version": str(version.pk)}},
        "query": {"a": str(backtest.pk), "b": str(backtest.pk), "instance": str(instance.pk)},
        "other_client": client_for(make_user(), other_tenant),
        # The staff queue is fuzzed as staff (a tenant token only ever gets its 403).
        "staff_headers": {"Authorization": f"Bearer {_staff_token()}"},
    }


def _staff_token() -> str:
    from tenants.services import token_create

    staff = make_user(is_staff=True)
    return token_create(
        tenant=make_tenant("Ops", owner=staff), user=staff, name="fuzz-staff", scopes=ALL_SCOPES
    ).plaintext


def _with_real_ids(case: Any, world: dict[str, Any], use_ids: bool) -> Any:
    """Point some generated cases at existing objects so they reach the services."""
    if use_ids and isinstance(case.body, dict):
        values = {**world["body"], **world["body_by_path"].get(case.operation.path, {})}
        for key, value in values.items():
            if key in case.body:
                case.body[key] = value
    if use_ids and isinstance(case.query, dict):
        for key, value in world["query"].items():
            if key in case.query:
                case.query[key] = value
    return case


def standard_error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is drf-standardized-errors' body (upload errors may add `line`/`col` per item)."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"type", "errors"}, body
    assert body["type"] in {"validation_error", "client_error"}, body
    assert isinstance(body["errors"], list) and body["errors"], body
    for error in body["errors"]:
        assert {"code", "detail", "attr"} <= set(error) <= {"code", "detail", "attr", "line", "col"}, error
        assert isinstance(error["code"], str) and isinstance(error["detail"], str), error
    return True


def not_a_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    assert response.status_code < 500, response.text[:2000]
    return True


def _run(operation_label: str, mode: GenerationMode, world: dict[str, Any], app: Any) -> None:
    method, path = operation_label.split(" ", 1)
    operation = SCHEMA[path][method]
    params = {
        p["name"]: world["path"][p["name"]]
        for p in operation.definition.raw.get("parameters", [])
        if p.get("in") == "path" and p["name"] in world["path"]
    }
    generated = operation.as_strategy(generation_mode=mode)
    strategies = [generated]
    if params:
        strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=params))
    cases = st.tuples(st.one_of(*strategies), st.booleans()).map(lambda t: _with_real_ids(t[0], world, t[1]))
    examples = UPLOAD_EXAMPLES if operation_label in UPLOAD_OPERATIONS else EXAMPLES

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=cases)
    def fuzz(case: Any) -> None:
        headers = world["staff_headers"] if path.startswith("/api/v1/staff/") else world["headers"]
        response = case.call(app=app, headers=headers)
        case.validate_response(
            response, checks=[not_a_server_error, *CHECKS], additional_checks=[standard_error_body]
        )

    fuzz()


@pytest.mark.parametrize("operation", OPERATIONS)
def test_fuzz_operation(operation: str, world: dict[str, Any], wsgi_app: Any, settings: Any) -> None:
    # Uploads are throttled in production; fuzzing measures correctness, not the budget.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "uploads": None},
    }
    _run(operation, GenerationMode.POSITIVE, world, wsgi_app)
    _run(operation, GenerationMode.NEGATIVE, world, wsgi_app)


HOSTILE = ["a\x00b", "\x00", "x" * 300_000, "é\ud800"[:1] + "\x00" * 10]


def test_nul_bytes_and_huge_strings_never_500(world: dict[str, Any], api_client: Any) -> None:
    """Every string field of every write gets NUL bytes and a 300 kB string: 4xx or 2xx, never 5xx."""
    schema = finished_schema()
    components = schema["components"]["schemas"]
    for route, item in schema["paths"].items():
        url = route
        for name, value in world["path"].items():
            url = url.replace("{" + name + "}", str(value))
        for method, op in item.items():
            if method not in {"post", "put", "patch"}:
                continue
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            ref = (content or {}).get("schema", {}).get("$ref", "")
            properties = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}) if ref else {}
            for field in [*properties, "name"]:
                for bad in HOSTILE:
                    body = {**world["body"], field: bad}
                    response = getattr(api_client, method)(url, body, format="json")
                    assert response.status_code < 500, (method, route, field, response.content[:500])
                    if response.status_code >= 400:
                        standard_error_body(None, _AsSchemathesis(response), None)
            # Query strings too: a NUL in a filter must be a 400, not a database error.
        if "get" in item:
            for param in item["get"].get("parameters", []):
                if param["in"] == "query":
                    response = api_client.get(url, {param["name"]: "a\x00b"})
                    assert response.status_code < 500, (route, param["name"], response.content[:500])


class _AsSchemathesis:
    """Adapter: a Django test response seen through the attributes the checks read."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self._response = response

    def json(self) -> Any:
        return self._response.json()


def test_fuzz_world_is_real(world: dict[str, Any], api_client: Any) -> None:
    """Guard against a silently empty fuzz target: the token works and the tenant has data."""
    assert not EXCLUDED and len(OPERATIONS) >= 69
    routes = ("orders", "fills", "positions", "instances", "runs", "backtests", "live-requests")
    for route in (f"/api/v1/{name}/" for name in routes):
        assert api_client.get(route).json()["count"] >= 1, route
    assert Decimal(api_client.get("/api/v1/accounts/").json()["results"][0]["balance"]) > 0
