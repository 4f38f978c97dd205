"""Token scopes: chosen at creation, enforced on every REST endpoint (403 naming the scope),
never escalated by a token, and the migration that keeps existing tokens' rights."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

from tenants.models import ApiToken
from tenants.scopes import ALL_SCOPES, TokenScope, TokenScopePermission
from tenants.services import token_create
from tests.factories import client_for

SOURCE = """from sandbox.sdk import Strategy


class S(Strategy):
    CONFIG_SCHEMA = {"n": {"type": "int", "default": 3, "min": 1, "max": 10}}

    def init(self):
        return {}

    def on_tick(self, tick):
        pass
"""


def bearer(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def _scoped(tenant: Any, user: Any, *scopes: str) -> APIClient:
    return bearer(token_create(tenant=tenant, user=user, name="scoped", scopes=scopes).plaintext)


def _refusal(response: Any) -> str:
    assert response.status_code == 403, response.content
    error = response.json()["errors"][0]
    assert error["code"] == "permission_denied"
    assert "scope" in error["detail"]
    return error["detail"]


def test_new_tokens_are_read_only_by_default_and_read_is_always_included(api_client: Any) -> None:
    body = api_client.post("/api/v1/tokens/", {"name": "plain"}, format="json").json()
    assert body["scopes"] == ["read"]
    body = api_client.post(
        "/api/v1/tokens/", {"name": "dev", "scopes": ["backtests:run", "strategies:write"]}, format="json"
    ).json()
    assert body["scopes"] == ["read", "strategies:write", "backtests:run"]
    assert ApiToken.objects.get(pk=body["id"]).scopes == ["read", "strategies:write", "backtests:run"]


def test_unknown_scope_is_a_400_naming_the_field(api_client: Any) -> None:
    response = api_client.post("/api/v1/tokens/", {"name": "x", "scopes": ["live:approve"]}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"].startswith("scopes")


def test_read_only_token_reads_but_every_write_is_403_naming_the_scope(
    tenant: Any, user: Any, market: Any, paper_account: Any
) -> None:
    reader = _scoped(tenant, user)
    assert reader.get("/api/v1/instances/").status_code == 200
    assert reader.get("/api/v1/strategies/").status_code == 200
    detail = _refusal(
        reader.post("/api/v1/strategies/", {"key": "s", "name": "S", "source": SOURCE}, format="json")
    )
    assert "'strategies:write'" in detail
    from strategies_store.models import StrategyDefinition

    assert not StrategyDefinition.objects.filter(tenant=tenant, key="s").exists()


def test_each_write_needs_its_own_scope(tenant: Any, user: Any, market: Any, paper_account: Any) -> None:
    owner = client_for(user, tenant)
    assert (
        owner.post(
            "/api/v1/strategies/", {"key": "s", "name": "S", "source": SOURCE}, format="json"
        ).status_code
        == 201
    )
    created = owner.post(
        "/api/v1/instances/",
        {"name": "i", "strategy": "s", "account": str(paper_account.pk), "market": market.pk},
        format="json",
    )
    assert created.status_code == 201
    instance_id = created.json()["id"]
    cases = [
        (
            "post",
            "/api/v1/strategies/",
            {"key": "t", "name": "T", "source": SOURCE},
            TokenScope.STRATEGIES_WRITE,
        ),
        (
            "post",
            "/api/v1/instances/",
            {"name": "j", "strategy": "s", "account": str(paper_account.pk), "market": market.pk},
            TokenScope.INSTANCES_WRITE,
        ),
        ("patch", f"/api/v1/instances/{instance_id}/", {"config": {"n": 4}}, TokenScope.INSTANCES_WRITE),
        ("post", f"/api/v1/instances/{instance_id}/mode/", {"mode": "observe"}, TokenScope.INSTANCES_CONTROL),
        ("post", "/api/v1/tenant/kill-switch/", {"engaged": True}, TokenScope.INSTANCES_CONTROL),
        (
            "post",
            "/api/v1/backtests/",
            {"instance": instance_id, "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
            TokenScope.BACKTESTS_RUN,
        ),
        (
            "post",
            f"/api/v1/instances/{instance_id}/live-request/",
            {"live_account": str(paper_account.pk)},
            "live:request",
        ),
        ("post", "/api/v1/tokens/", {"name": "more"}, TokenScope.ADMIN),
    ]
    for method, path, body, scope in cases:
        others = [s for s in ALL_SCOPES if s != scope]
        lacking = _scoped(tenant, user, *others)
        detail = _refusal(getattr(lacking, method)(path, body, format="json"))
        assert f"'{scope}'" in detail, (path, detail)
        holding = _scoped(tenant, user, scope)
        answer = getattr(holding, method)(path, body, format="json")
        # With the scope the request reaches the view: whatever the view says, it is not a scope refusal.
        assert not (answer.status_code == 403 and "scope" in answer.content.decode()), (path, answer.content)


def test_a_token_cannot_mint_a_broader_token(tenant: Any, user: Any) -> None:
    admin_only = _scoped(tenant, user, TokenScope.ADMIN)
    response = admin_only.post(
        "/api/v1/tokens/", {"name": "wider", "scopes": ["live:request"]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert (error["code"], error["attr"]) == ("SCOPE_ESCALATION", "scopes")
    assert not ApiToken.objects.filter(name="wider").exists()
    # A session may choose any scopes (the owner is present in the browser).
    session = APIClient()
    session.force_login(user)
    response = session.post("/api/v1/tokens/", {"name": "wider", "scopes": ["live:request"]}, format="json")
    assert response.status_code == 201


def _api_views(resolver: URLResolver, prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            found += _api_views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None) or getattr(entry.callback, "cls", None)
            if view_class is not None and issubclass(view_class, APIView):
                found.append((prefix + str(entry.pattern), view_class))
    return found


def test_every_api_endpoint_checks_token_scopes() -> None:
    views = [(route, cls) for route, cls in _api_views(get_resolver()) if route.startswith("api/v1/")]
    assert len(views) > 40
    for route, cls in views:
        view = cls()
        view.request = type("R", (), {"method": "POST"})()
        view.kwargs = {}
        assert any(isinstance(p, TokenScopePermission) for p in view.get_permissions()), route


@pytest.mark.django_db(transaction=True)
def test_migration_gives_existing_tokens_every_scope(tenant: Any, user: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("tenants", "0002_audit_append_only")])
    old = executor.loader.project_state([("tenants", "0002_audit_append_only")]).apps
    old.get_model("tenants", "ApiToken").objects.create(
        tenant_id=tenant.pk, user_id=user.pk, name="legacy", prefix="abcd1234", digest="0" * 64
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert ApiToken.objects.get(name="legacy").scopes == list(ALL_SCOPES)
    assert token_create(tenant=tenant, user=user, name="new").token.scopes == ["read"]
