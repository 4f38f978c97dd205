"""Every /api/ error answers the drf-standardized-errors JSON body, including Django-level 404s."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from tenants.errors import handler404, handler500
from tests.api.conftest import assert_standard_error


def test_unknown_api_path_is_a_json_404(db: None) -> None:
    for path in ("/api/v1/nope/", "/api/nope", "/api/v1/tokens/not-a-uuid/"):
        errors = assert_standard_error(Client().get(path), 404)
        assert errors[0]["code"] == "not_found"


def test_unknown_api_path_is_a_json_404_for_authenticated_callers_too(api_client: Any) -> None:
    errors = assert_standard_error(api_client.post("/api/v1/nope/", {}, format="json"), 404)
    assert errors[0]["code"] == "not_found"


def test_unknown_page_outside_the_api_stays_html(db: None) -> None:
    response = Client().get("/definitely-not-a-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_missing_credentials_are_401(db: None) -> None:
    for path in ("/api/v1/tenant/", "/api/v1/tokens/", "/api/v1/members/", "/api/v1/audit-events/"):
        response = APIClient().get(path)
        errors = assert_standard_error(response, 401)
        assert errors[0]["code"] == "not_authenticated"
        assert response["WWW-Authenticate"] == "Bearer"


def test_viewer_write_is_a_standard_403(viewer_client: Any) -> None:
    errors = assert_standard_error(viewer_client.post("/api/v1/tokens/", {"name": "x"}, format="json"), 403)
    assert errors[0]["code"] == "permission_denied"


def test_validation_error_names_the_field(api_client: Any) -> None:
    errors = assert_standard_error(
        api_client.post("/api/v1/tokens/", {}, format="json"), 400, "validation_error"
    )
    assert [(e["attr"], e["code"]) for e in errors] == [("name", "required")]


def test_malformed_json_is_a_standard_400(api_client: Any) -> None:
    response = api_client.generic("POST", "/api/v1/tokens/", "{not json", content_type="application/json")
    errors = assert_standard_error(response, 400)
    assert errors[0]["code"] == "parse_error"


def test_wrong_method_is_a_standard_405(api_client: Any) -> None:
    errors = assert_standard_error(api_client.put("/api/v1/audit-events/", {}, format="json"), 405)
    assert errors[0]["code"] == "method_not_allowed"


def test_unsupported_media_type_is_a_standard_415(api_client: Any) -> None:
    response = api_client.generic("POST", "/api/v1/tokens/", "name=x", content_type="text/csv")
    assert_standard_error(response, 415)


def test_handler500_answers_json_under_api_and_html_elsewhere(db: None) -> None:
    factory = RequestFactory()

    def get(path: str) -> Any:
        request = factory.get(path)
        request.user = AnonymousUser()  # as after AuthenticationMiddleware; site templates read it
        return request

    response = handler500(get("/api/v1/tokens/"))
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b'"type": "server_error"' in response.content
    assert b"Traceback" not in response.content
    html = handler500(get("/dashboard/"))
    assert (html.status_code, html["Content-Type"].startswith("text/html")) == (500, True)
    assert handler404(get("/x/"), None)["Content-Type"].startswith("text/html")
