"""The one application error family: the API's standard body and the Django form helper."""

from __future__ import annotations

from typing import Any

from django import forms
from drf_standardized_errors.handler import exception_handler

from tenants.errors import ApplicationError, Conflict, ErrorMessage, Forbidden, form_add_error


def body(exc: Exception) -> tuple[int, Any]:
    response = exception_handler(exc, {"view": None, "args": (), "kwargs": {}, "request": None})
    assert response is not None
    return response.status_code, response.data


def test_a_field_error_is_a_validation_error_naming_the_field() -> None:
    status, data = body(ApplicationError("LAST_OWNER", "The last owner cannot go.", field="role"))
    assert status == 400
    assert data == {
        "type": "validation_error",
        "errors": [{"code": "LAST_OWNER", "detail": "The last owner cannot go.", "attr": "role"}],
    }


def test_a_request_wide_400_has_no_attr() -> None:
    assert body(ApplicationError("LAST_OWNER", "No."))[1]["errors"] == [
        {"code": "LAST_OWNER", "detail": "No.", "attr": None}
    ]


def test_other_statuses_are_client_errors_with_the_code() -> None:
    status, data = body(Conflict("ACTIVATION_WHILE_OFF", "Power it on first."))
    assert (status, data["type"]) == (409, "client_error")
    assert data["errors"] == [{"code": "ACTIVATION_WHILE_OFF", "detail": "Power it on first.", "attr": None}]
    status, data = body(Forbidden(message="Staff only."))
    assert (status, data["errors"][0]["code"]) == (403, "permission_denied")
    assert body(ApplicationError("GONE", "Gone.", status=410))[0] == 410


def test_several_fields_keep_their_codes_and_nested_paths() -> None:
    exc = ApplicationError(
        errors={
            "name": ["must be a non-empty string."],
            "config": {"window": ["must be at least 2."]},
            "criteria": [ErrorMessage("Too few trades.", code="MIN_TRADES")],
        }
    )
    assert [(e["attr"], e["code"], e["detail"]) for e in body(exc)[1]["errors"]] == [
        ("name", "invalid", "must be a non-empty string."),
        ("criteria", "MIN_TRADES", "Too few trades."),
        ("config.window", "invalid", "must be at least 2."),
    ]
    assert str(exc) == "must be a non-empty string.; must be at least 2.; Too few trades."


class _Form(forms.Form):
    name = forms.CharField(required=False)
    config = forms.CharField(required=False)
    cfg__window = forms.IntegerField(required=False)
    api_key = forms.CharField(required=False)


def test_form_helper_puts_each_message_on_its_field() -> None:
    form = _Form(data={})
    assert form.is_valid()
    exc = ApplicationError(
        errors={
            "name": ["taken"],
            "config": {"window": ["too small"], "side": ["bad"]},
            "credentials": ["no key"],
            "unknown": ["odd"],
            "non_field_errors": ["whole"],
        }
    )
    form_add_error(form, exc, {"config.window": "cfg__window", "credentials": "api_key"})
    assert form.errors["name"] == ["taken"]
    assert form.errors["cfg__window"] == ["too small"]
    assert form.errors["config"] == ["side: bad"]
    assert form.errors["api_key"] == ["no key"]
    assert form.non_field_errors() == ["unknown: odd", "whole"]
