"""Every bad upload is a 400 naming the field (and, for code, the line and column); nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import AuditEvent
from tests.strategies_store.conftest import (
    CONFIG_OK,
    ENTRY_OK,
    EXIT_OK,
    THESIS,
    TICK_OK,
    bundle_payload,
    tick_payload,
)
from tests.strategies_store.helpers import STRATEGIES_URL, upload_error

pytestmark = pytest.mark.django_db


def _nothing_stored() -> None:
    assert StrategyDefinition.objects.count() == 0
    assert StrategyVersion.objects.count() == 0
    assert not AuditEvent.objects.filter(action="strategy.upload").exists()


def _multipart_file(content: str | bytes, name: str = "strategy.py") -> SimpleUploadedFile:
    data = content.encode() if isinstance(content, str) else content
    return SimpleUploadedFile(name, data, content_type="text/x-python")


SYNTAX_ERROR = """\
from sandbox.sdk import Strategy

class Broken(Strategy):
    def on_tick(self, tick)
        return None
"""

IMPORT_OS = """\
import math
import os
from sandbox.sdk import Strategy

class S(Strategy):
    pass
"""

NO_CLASS = """\
import math

def on_tick(tick):
    return math.sqrt(tick.price)
"""

TWO_CLASSES = """\
from sandbox.sdk import Strategy

class A(Strategy):
    pass

class B(Strategy):
    pass
"""

BAD_SCHEMA_TYPE = """\
from sandbox.sdk import Strategy

class S(Strategy):
    CONFIG_SCHEMA = {"window": {"type": "decimal", "default": 1}}
"""

SCHEMA_NOT_LITERAL = """\
from sandbox.sdk import Strategy

def make():
    return {"window": {"type": "int", "default": 1}}

class S(Strategy):
    CONFIG_SCHEMA = make()
"""


# --- tick style: code errors (JSON and multipart name their own field) ----------------------------


@pytest.mark.parametrize("shape", ["json", "multipart"])
def test_syntax_error_reports_line_and_column(api_client: Any, shape: str) -> None:
    if shape == "json":
        resp = api_client.post(STRATEGIES_URL, tick_payload(source=SYNTAX_ERROR), format="json")
        attr = "source"
    else:
        data = {"key": "broken", "name": "Broken", "file": _multipart_file(SYNTAX_ERROR)}
        resp = api_client.post(STRATEGIES_URL, data, format="multipart")
        attr = "file"
    err = upload_error(resp, attr=attr, code="COMPILE_ERROR")
    assert err["line"] == 4
    assert isinstance(err["col"], int) and err["col"] >= 1
    assert err["detail"].startswith(f"strategy.py line 4, col {err['col']}: ")
    _nothing_stored()


def test_disallowed_import_names_the_module(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=IMPORT_OS), format="json")
    err = upload_error(resp, attr="source", code="FORBIDDEN_IMPORT")
    assert "'os'" in err["detail"]
    assert err["line"] == 2
    _nothing_stored()


def test_missing_strategy_class(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=NO_CLASS), format="json")
    err = upload_error(resp, attr="source", code="NO_STRATEGY_CLASS")
    assert "Strategy" in err["detail"]
    _nothing_stored()


def test_two_strategy_classes_are_ambiguous(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=TWO_CLASSES), format="json")
    err = upload_error(resp, attr="source", code="AMBIGUOUS_STRATEGY_CLASS")
    assert "A" in err["detail"] and "B" in err["detail"]
    _nothing_stored()


def test_bad_config_schema_field_type(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=BAD_SCHEMA_TYPE), format="json")
    err = upload_error(resp, attr="source", code="BAD_SCHEMA")
    assert "window" in err["detail"] and "type" in err["detail"]
    _nothing_stored()


def test_config_schema_must_be_a_literal(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=SCHEMA_NOT_LITERAL), format="json")
    err = upload_error(resp, attr="source")
    assert "CONFIG_SCHEMA" in err["detail"]
    assert err["line"] == 7
    _nothing_stored()


# --- tick style: byte-level checks (before any sandbox work) --------------------------------------


def test_too_large_json(api_client: Any) -> None:
    source = TICK_OK + "#" * (256 * 1024)
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=source), format="json")
    err = upload_error(resp, attr="source", code="TOO_LARGE")
    assert "262144 bytes" in err["detail"] and "256 KiB" in err["detail"]
    _nothing_stored()


def test_too_large_multipart_uses_the_setting(api_client: Any, settings: Any) -> None:
    settings.STRATBOX_MAX_SOURCE_BYTES = 1024
    data = {"key": "big", "name": "Big", "file": _multipart_file(TICK_OK + "#" * 1024)}
    resp = api_client.post(STRATEGIES_URL, data, format="multipart")
    err = upload_error(resp, attr="file", code="TOO_LARGE")
    assert "limit is 1024 bytes" in err["detail"]
    _nothing_stored()


def test_exactly_at_the_limit_is_accepted(api_client: Any, settings: Any) -> None:
    size = len(TICK_OK.encode())
    settings.STRATBOX_MAX_SOURCE_BYTES = size
    resp = api_client.post(STRATEGIES_URL, tick_payload(), format="json")
    assert resp.status_code == 201, resp.json()


@pytest.mark.parametrize("shape", ["json", "multipart"])
def test_nul_byte(api_client: Any, shape: str) -> None:
    source = TICK_OK + "x = 1\x00\n"
    if shape == "json":
        resp = api_client.post(STRATEGIES_URL, tick_payload(source=source), format="json")
        attr = "source"
    else:
        resp = api_client.post(
            STRATEGIES_URL, {"key": "nul", "name": "N", "file": _multipart_file(source)}, format="multipart"
        )
        attr = "file"
    err = upload_error(resp, attr=attr, code="NUL_BYTE")
    assert "NUL" in err["detail"] and f"line {TICK_OK.count(chr(10)) + 1}" in err["detail"]
    _nothing_stored()


def test_not_utf8(api_client: Any) -> None:
    raw = TICK_OK.encode() + b"# \xff\xfe\n"
    resp = api_client.post(
        STRATEGIES_URL, {"key": "latin", "name": "L", "file": _multipart_file(raw)}, format="multipart"
    )
    err = upload_error(resp, attr="file", code="ENCODING")
    assert "UTF-8" in err["detail"]
    _nothing_stored()


def test_file_must_be_python(api_client: Any) -> None:
    resp = api_client.post(
        STRATEGIES_URL,
        {"key": "txt", "name": "T", "file": _multipart_file(TICK_OK, name="strategy.txt")},
        format="multipart",
    )
    err = upload_error(resp, attr="file", code="BAD_FILE_TYPE")
    assert ".py" in err["detail"]
    _nothing_stored()


def test_no_code_at_all(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, {"key": "empty", "name": "E"}, format="json")
    err = upload_error(resp, attr="source", code="REQUIRED")
    assert "'file'" in err["detail"] and "'source'" in err["detail"]
    _nothing_stored()


def test_empty_source(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source="   \n"), format="json")
    upload_error(resp, attr="source", code="EMPTY")
    _nothing_stored()


def test_source_must_be_a_string(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=["x"]), format="json")
    upload_error(resp, attr="source", code="INVALID")
    _nothing_stored()


def test_file_and_source_together_are_ambiguous(api_client: Any) -> None:
    data = {"key": "both", "name": "B", "file": _multipart_file(TICK_OK), "source": TICK_OK}
    resp = api_client.post(STRATEGIES_URL, data, format="multipart")
    upload_error(resp, attr="source", code="AMBIGUOUS")
    _nothing_stored()


def test_tick_style_with_bundle_files_is_refused(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(style="tick", exit_source=EXIT_OK), format="json")
    upload_error(resp, attr="exit_source", code="UNEXPECTED")
    _nothing_stored()


@pytest.mark.parametrize("key", ["has space", "", "x" * 65, "ümlaut!"])
def test_bad_key(api_client: Any, key: str) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(key=key), format="json")
    upload_error(resp, attr="key")
    _nothing_stored()


def test_key_taken(api_client: Any, tick_strategy: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(key=tick_strategy.key), format="json")
    err = upload_error(resp, attr="key", code="KEY_TAKEN")
    assert tick_strategy.key in err["detail"]
    assert StrategyDefinition.objects.count() == 1
    assert StrategyVersion.objects.count() == 1


# --- signal bundles ---------------------------------------------------------------------------------


def test_bundle_without_thesis(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, bundle_payload(thesis=""), format="json")
    err = upload_error(resp, attr="thesis", code="REQUIRED")
    assert "thesis" in err["detail"]
    _nothing_stored()


def test_bundle_thesis_may_come_from_config_json(api_client: Any) -> None:
    config = {**CONFIG_OK, "thesis": "Strong moves persist."}
    resp = api_client.post(STRATEGIES_URL, bundle_payload(thesis="", config=config), format="json")
    assert resp.status_code == 201, resp.json()
    assert resp.json()["thesis"] == "Strong moves persist."


def _bundle_multipart(**overrides: Any) -> dict[str, Any]:
    files = {
        "entry": _multipart_file(ENTRY_OK, "entry.py"),
        "exit": _multipart_file(EXIT_OK, "exit.py"),
        "config": SimpleUploadedFile("config.json", json.dumps(CONFIG_OK).encode(), "application/json"),
    }
    files.update(overrides)
    return {"key": "bundle", "name": "Bundle", "thesis": THESIS, **files}


def test_bundle_config_json_with_an_escaped_nul_is_refused(api_client: Any) -> None:
    # "\u0000" is six ASCII bytes, so the raw NUL-byte check cannot see it; jsonb cannot store it.
    bad = SimpleUploadedFile("config.json", b'{"name": "a\\u0000b", "config_schema": {}}', "application/json")
    resp = api_client.post(STRATEGIES_URL, _bundle_multipart(config=bad), format="multipart")
    err = upload_error(resp, attr="config", code="NUL_BYTE")
    assert "NUL" in err["detail"]
    _nothing_stored()


def test_bundle_with_invalid_config_json(api_client: Any) -> None:
    bad = SimpleUploadedFile("config.json", b'{\n  "config_schema": {,}\n}', "application/json")
    resp = api_client.post(STRATEGIES_URL, _bundle_multipart(config=bad), format="multipart")
    err = upload_error(resp, attr="config", code="INVALID_JSON")
    assert err["line"] == 2 and err["col"] == 21
    assert err["detail"].startswith("config.json line 2, col 21: invalid JSON")
    _nothing_stored()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"name": "x"}, "config_schema"),
        ({"config_schema": {}, "thesis": 42}, "'thesis' must be a string"),
    ],
)
def test_bundle_config_shape(api_client: Any, config: Any, message: str) -> None:
    resp = api_client.post(STRATEGIES_URL, bundle_payload(config=config), format="json")
    err = upload_error(resp, attr="config")
    assert message in err["detail"]
    _nothing_stored()


def test_bundle_config_schema_is_validated(api_client: Any) -> None:
    config = {"config_schema": {"threshold": {"type": "float", "default": 5, "max": 1}}}
    resp = api_client.post(STRATEGIES_URL, bundle_payload(config=config), format="json")
    err = upload_error(resp, attr="config", code="BAD_SCHEMA")
    assert "threshold" in err["detail"]
    _nothing_stored()


def test_exit_without_should_exit(api_client: Any) -> None:
    exit_py = "def should_leave(ctx, position):\n    return None\n"
    resp = api_client.post(
        STRATEGIES_URL, _bundle_multipart(exit=_multipart_file(exit_py, "exit.py")), format="multipart"
    )
    err = upload_error(resp, attr="exit", code="MISSING_FUNCTION")
    assert "should_exit" in err["detail"]
    _nothing_stored()


def test_entry_without_should_enter_json(api_client: Any) -> None:
    resp = api_client.post(
        STRATEGIES_URL, bundle_payload(entry_source="def enter(ctx):\n    return []\n"), format="json"
    )
    err = upload_error(resp, attr="entry_source", code="MISSING_FUNCTION")
    assert "should_enter" in err["detail"]
    _nothing_stored()


def test_bundle_missing_exit_file(api_client: Any) -> None:
    data = bundle_payload()
    del data["exit_source"]
    resp = api_client.post(STRATEGIES_URL, data, format="json")
    err = upload_error(resp, attr="exit_source", code="REQUIRED")
    assert "exit.py" in err["detail"]
    _nothing_stored()


def test_bundle_reports_problems_of_several_files_at_once(api_client: Any) -> None:
    resp = api_client.post(
        STRATEGIES_URL,
        bundle_payload(entry_source="def should_enter(ctx)\n", exit_source="import os\n"),
        format="json",
    )
    upload_error(resp, attr="entry_source", code="COMPILE_ERROR")
    upload_error(resp, attr="exit_source", code="FORBIDDEN_IMPORT")
    _nothing_stored()


def test_bundle_with_tick_source_is_refused(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, bundle_payload(source=TICK_OK), format="json")
    upload_error(resp, attr="source", code="UNEXPECTED")
    _nothing_stored()


# --- the good paths store the sandbox's report -------------------------------------------------------


def test_tick_upload_json_stores_version_one(api_client: Any, tenant: Any, user: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, tick_payload(), format="json")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["style"] == "tick" and body["builtin"] is False
    assert body["latest_version"]["number"] == 1
    assert body["latest_version"]["config_schema"]["window"]["default"] == 20
    version = StrategyVersion.objects.get(definition__tenant=tenant)
    assert version.source == TICK_OK
    assert version.validation_report["files"]["strategy.py"]["ok"] is True
    assert version.validation_report["files"]["strategy.py"]["class_name"] == "Momentum"
    assert version.created_by == user
    event = AuditEvent.objects.get(action="strategy.upload")
    assert event.tenant == tenant and event.after["number"] == 1 and event.after["sha256"] == version.sha256


def test_tick_upload_multipart(api_client: Any) -> None:
    data = {"key": "mp", "name": "Multipart", "file": _multipart_file(TICK_OK)}
    resp = api_client.post(STRATEGIES_URL, data, format="multipart")
    assert resp.status_code == 201, resp.json()
    assert StrategyVersion.objects.get().source == TICK_OK


def test_bundle_upload_multipart(api_client: Any) -> None:
    resp = api_client.post(STRATEGIES_URL, _bundle_multipart(), format="multipart")
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["style"] == "signal_bundle" and body["thesis"] == THESIS
    version = StrategyVersion.objects.get()
    assert version.source == ENTRY_OK and version.exit_source == EXIT_OK
    assert version.bundle_config == CONFIG_OK
    assert version.config_schema == CONFIG_OK["config_schema"]
    assert set(version.validation_report["files"]) == {"entry.py", "exit.py"}


def test_bundle_upload_json_name_defaults_to_config(api_client: Any) -> None:
    data = bundle_payload(name="")
    resp = api_client.post(STRATEGIES_URL, data, format="json")
    assert resp.status_code == 201, resp.json()
    assert resp.json()["name"] == CONFIG_OK["name"]


def test_config_json_with_utf8_bom_is_accepted(api_client: Any) -> None:
    config = SimpleUploadedFile(
        "config.json", "\ufeff".encode() + json.dumps(CONFIG_OK).encode(), "application/json"
    )
    resp = api_client.post(STRATEGIES_URL, _bundle_multipart(config=config), format="multipart")
    assert resp.status_code == 201, resp.json()


def test_code_is_never_run_in_the_web_process(api_client: Any) -> None:
    """A module body that blows up on import runs only in a single-use sandbox host's trial load
    (a file that validates must load), never in the web process: the upload is refused cleanly."""
    source = TICK_OK + "\nraise ValueError('module body executed')\n"
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=source), format="json")
    err = upload_error(resp, attr="source")
    assert err["code"] == "RUNTIME_ERROR"
    assert "loading strategy.py: ValueError: module body executed" in err["detail"]
    _nothing_stored()
    assert api_client.post(STRATEGIES_URL, tick_payload(), format="json").status_code == 201


def test_pathologically_nested_source_is_refused_not_crashing(api_client: Any) -> None:
    """Compiling is untrusted work: deep nesting must fail in the sandbox host, as a clean 400."""
    source = TICK_OK + "\nx = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    resp = api_client.post(STRATEGIES_URL, tick_payload(source=source), format="json")
    err = upload_error(resp, attr="source")
    assert err["code"] in ("TOO_DEEP", "COMPILE_ERROR")
    _nothing_stored()
    # The web process is fine and the next upload works.
    assert api_client.post(STRATEGIES_URL, tick_payload(), format="json").status_code == 201
