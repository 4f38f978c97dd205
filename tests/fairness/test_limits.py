"""Each smaller limit with its exact status and body: oversized and too-deep bodies, over-long CSV
fields, form throttles equal to the API's (one shared budget), cached and throttled diffs."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.engine.conftest import COUNTER, make_version

pytestmark = pytest.mark.django_db


def _rates(settings: Any, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_an_oversized_api_body_is_a_413_in_the_standard_body(api_client: Any) -> None:
    body = json.dumps({"name": "x" * (6 * 1024 * 1024)})
    response = api_client.post("/api/v1/instances/", body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {
                "code": "request_too_large",
                "detail": "The request body is larger than 5242880 bytes.",
                "attr": None,
            }
        ],
    }


def test_an_oversized_page_post_is_a_plain_413(user: Any, tenant: Any) -> None:
    web = Client()
    web.force_login(user)
    response = web.post(
        reverse("frontend:token_add"),
        "token-name=" + "x" * (6 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response.content == b"The request body is larger than 5242880 bytes."


def test_too_deeply_nested_json_is_a_400(api_client: Any) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = api_client.post("/api/v1/instances/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "parse_error", "detail": "The request body is nested too deeply.", "attr": None}],
    }


def test_an_over_long_csv_field_is_a_400_naming_the_line(api_client: Any, tenant: Any) -> None:
    version = make_version(tenant, COUNTER)
    text = "ts,open,high,low,close,volume\n1767225600,1,2,1,1,1\n1767225660," + "9" * 200_000 + ",2,1,1,1\n"
    upload = io.BytesIO(text.encode())
    upload.name = "long.csv"
    response = api_client.post(
        "/api/v1/backtests/", {"version": str(version.pk), "csv": upload}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "validation_error",
        "errors": [
            {
                "code": "invalid",
                "detail": "line 3: unreadable CSV: field larger than field limit (131072)",
                "attr": "csv",
            }
        ],
    }


def test_the_upload_form_shares_the_apis_upload_budget(
    api_client: Any, user: Any, tenant: Any, settings: Any
) -> None:
    _rates(settings, uploads="1/min")
    response = api_client.post(
        "/api/v1/strategies/",
        {"key": "first", "name": "First", "source": COUNTER},
        format="json",
    )
    assert response.status_code == 201, response.content
    web = Client()
    web.force_login(user)
    page = web.post(
        reverse("frontend:strategy_upload"),
        {"kind": "single", "key": "second", "name": "S", "source": COUNTER},
    )
    assert page.status_code == 429
    assert "Too many requests: try again in" in page.content.decode()
    from strategies_store.models import StrategyDefinition

    assert not StrategyDefinition.objects.filter(key="second").exists()


def test_the_token_form_is_throttled_like_the_api(user: Any, tenant: Any, settings: Any) -> None:
    _rates(settings, token_create="1/min")
    web = Client()
    web.force_login(user)
    assert web.post(reverse("frontend:token_add"), {"token-name": "one"}).status_code == 200
    response = web.post(reverse("frontend:token_add"), {"token-name": "two"})
    assert response.status_code == 429
    assert "Too many requests" in response.content.decode()
    assert tenant.api_tokens.filter(name="two").count() == 0


def test_diffs_are_cached_and_throttled(api_client: Any, tenant: Any, settings: Any) -> None:
    from django.core.cache import cache

    _rates(settings, diffs="2/min")
    v1 = make_version(tenant, COUNTER, key="diffme")
    make_version(tenant, COUNTER.replace('self.state["n"] += 1', 'self.state["n"] += 2'), key="diffme")
    url = f"/api/v1/strategies/{v1.definition_id}/versions/2/diff/"
    first = api_client.get(url)
    assert first.status_code == 200
    assert '+        self.state["n"] += 2' in first.json()["files"][0]["diff"]
    keys = cache._cache.get_client().keys("*strategies:diff:*")  # the computed diff is stored
    assert len(keys) == 1
    assert api_client.get(url).json() == first.json()
    third = api_client.get(url)
    assert third.status_code == 429
    assert third.json()["errors"][0]["code"] == "throttled"
