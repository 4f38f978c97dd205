"""Numbered immutable versions: numbering, sha256, duplicate detection, reverts, detail and diff."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from strategies_store.models import StrategyVersion
from strategies_store.selectors import version_latest
from strategies_store.services import DuplicateVersion, version_create
from tenants.models import AuditEvent
from tests.strategies_store.conftest import CONFIG_OK, ENTRY_OK, EXIT_OK, THESIS, TICK_OK, TICK_OK_V2
from tests.strategies_store.helpers import upload_error, versions_url

pytestmark = pytest.mark.django_db


def test_tick_sha256_is_over_the_source(tick_version: Any) -> None:
    assert tick_version.number == 1
    assert tick_version.sha256 == hashlib.sha256(TICK_OK.encode()).hexdigest()


def test_new_version_gets_the_next_number(api_client: Any, tick_strategy: Any, user: Any) -> None:
    resp = api_client.post(
        versions_url(tick_strategy.id), {"source": TICK_OK_V2, "notes": "wider"}, format="json"
    )
    assert resp.status_code == 201, resp.json()
    body = resp.json()
    assert body["number"] == 2 and body["duplicate"] is False and body["notes"] == "wider"
    assert body["config_schema"]["window"]["default"] == 30
    assert body["created_by"] == user.email
    assert version_latest(tick_strategy).number == 2
    assert AuditEvent.objects.filter(action="strategy.upload", target_id=body["id"]).exists()


def test_version_upload_multipart(api_client: Any, tick_strategy: Any) -> None:
    upload = SimpleUploadedFile("v2.py", TICK_OK_V2.encode(), "text/x-python")
    resp = api_client.post(versions_url(tick_strategy.id), {"file": upload}, format="multipart")
    assert resp.status_code == 201, resp.json()
    assert resp.json()["number"] == 2


def test_identical_reupload_is_a_duplicate(api_client: Any, tick_strategy: Any) -> None:
    events = AuditEvent.objects.count()
    resp = api_client.post(versions_url(tick_strategy.id), {"source": TICK_OK}, format="json")
    assert resp.status_code == 200, resp.json()
    body = resp.json()
    assert body["duplicate"] is True and body["number"] == 1
    assert "v1" in body["detail"]
    assert StrategyVersion.objects.filter(definition=tick_strategy).count() == 1
    assert AuditEvent.objects.count() == events


def test_service_raises_duplicate_with_the_existing_version(tick_version: Any, user: Any) -> None:
    with pytest.raises(DuplicateVersion) as exc:
        version_create(definition=tick_version.definition, author=user, source=TICK_OK)
    assert exc.value.existing == tick_version
    assert exc.value.code == "DUPLICATE_VERSION"


def test_reverting_to_older_content_is_a_new_version(tick_strategy: Any, user: Any) -> None:
    v2 = version_create(definition=tick_strategy, author=user, source=TICK_OK_V2)
    v3 = version_create(definition=tick_strategy, author=user, source=TICK_OK)
    assert (v2.number, v3.number) == (2, 3)
    assert v3.sha256 == tick_strategy.versions.get(number=1).sha256


def test_invalid_new_version_keeps_the_old_one(api_client: Any, tick_strategy: Any) -> None:
    resp = api_client.post(versions_url(tick_strategy.id), {"source": "import os\n"}, format="json")
    upload_error(resp, attr="source", code="FORBIDDEN_IMPORT")
    assert list(tick_strategy.versions.values_list("number", flat=True)) == [1]


def test_version_style_must_match_the_strategy(api_client: Any, tick_strategy: Any) -> None:
    resp = api_client.post(
        versions_url(tick_strategy.id),
        {"entry_source": ENTRY_OK, "exit_source": EXIT_OK, "config": CONFIG_OK},
        format="json",
    )
    upload_error(resp, attr="entry_source", code="UNEXPECTED")
    assert tick_strategy.versions.count() == 1


def test_bundle_sha_covers_every_file_and_canonical_config(
    api_client: Any, bundle_strategy: Any, user: Any
) -> None:
    url = versions_url(bundle_strategy.id)
    # Same config with keys in another order and other whitespace: canonical JSON -> duplicate.
    reordered = dict(reversed(list(CONFIG_OK.items())))
    resp = api_client.post(
        url, {"entry_source": ENTRY_OK, "exit_source": EXIT_OK, "config": reordered}, format="json"
    )
    assert resp.status_code == 200 and resp.json()["duplicate"] is True
    # A change in exit.py alone is a new version; so is a change in config.json alone.
    exit_v2 = EXIT_OK + "\n# tweak\n"
    resp = api_client.post(
        url, {"entry_source": ENTRY_OK, "exit_source": exit_v2, "config": CONFIG_OK}, format="json"
    )
    assert resp.status_code == 201 and resp.json()["number"] == 2
    config_v3 = {**CONFIG_OK, "description": "changed"}
    resp = api_client.post(
        url, {"entry_source": ENTRY_OK, "exit_source": exit_v2, "config": config_v3}, format="json"
    )
    assert resp.status_code == 201 and resp.json()["number"] == 3
    shas = set(bundle_strategy.versions.values_list("sha256", flat=True))
    assert len(shas) == 3


def test_bundle_version_keeps_thesis_unless_given(api_client: Any, bundle_strategy: Any) -> None:
    url = versions_url(bundle_strategy.id)
    data = {"entry_source": ENTRY_OK + "\n", "exit_source": EXIT_OK, "config": CONFIG_OK}
    assert api_client.post(url, data, format="json").status_code == 201
    bundle_strategy.refresh_from_db()
    assert bundle_strategy.thesis == THESIS
    data = {**data, "entry_source": ENTRY_OK + "\n\n", "thesis": "A sharper thesis."}
    assert api_client.post(url, data, format="json").status_code == 201
    bundle_strategy.refresh_from_db()
    assert bundle_strategy.thesis == "A sharper thesis."


def test_version_list_and_detail(api_client: Any, tick_strategy: Any, user: Any) -> None:
    version_create(definition=tick_strategy, author=user, source=TICK_OK_V2)
    resp = api_client.get(versions_url(tick_strategy.id))
    assert resp.status_code == 200
    body = resp.json()
    assert body["count"] == 2 and [v["number"] for v in body["results"]] == [2, 1]
    assert "source" not in body["results"][0]
    resp = api_client.get(f"{versions_url(tick_strategy.id)}1/")
    assert resp.status_code == 200
    detail = resp.json()
    assert detail["source"] == TICK_OK and detail["files"] == {"strategy.py": TICK_OK}
    assert detail["validation_report"]["files"]["strategy.py"]["ok"] is True
    assert detail["config_schema"]["window"]["type"] == "int"
    assert api_client.get(f"{versions_url(tick_strategy.id)}9/").status_code == 404


def test_diff_against_previous_version(api_client: Any, tick_strategy: Any, user: Any) -> None:
    version_create(definition=tick_strategy, author=user, source=TICK_OK_V2)
    resp = api_client.get(f"{versions_url(tick_strategy.id)}2/diff/")
    assert resp.status_code == 200, resp.json()
    body = resp.json()
    assert body["from_number"] == 1 and body["to_number"] == 2
    [file_diff] = body["files"]
    assert file_diff["file"] == "strategy.py" and file_diff["changed"] is True
    diff = file_diff["diff"]
    assert diff.startswith("--- v1/strategy.py\n+++ v2/strategy.py\n@@")
    assert '-        "window": {"type": "int", "default": 20' in diff
    assert '+        "window": {"type": "int", "default": 30' in diff


def test_diff_of_first_version_is_against_nothing(api_client: Any, tick_strategy: Any) -> None:
    body = api_client.get(f"{versions_url(tick_strategy.id)}1/diff/").json()
    assert body["from_number"] is None
    assert body["files"][0]["diff"].startswith("--- /dev/null\n+++ v1/strategy.py")


def test_diff_per_file_of_a_bundle(api_client: Any, bundle_strategy: Any, user: Any) -> None:
    version_create(
        definition=bundle_strategy,
        author=user,
        source=ENTRY_OK,
        exit_source=EXIT_OK + "# v2\n",
        config=CONFIG_OK,
    )
    body = api_client.get(f"{versions_url(bundle_strategy.id)}2/diff/").json()
    by_file = {f["file"]: f for f in body["files"]}
    assert set(by_file) == {"entry.py", "exit.py", "config.json"}
    assert by_file["exit.py"]["changed"] is True and "+# v2" in by_file["exit.py"]["diff"]
    assert by_file["entry.py"]["changed"] is False and by_file["entry.py"]["diff"] == ""
    assert by_file["config.json"]["changed"] is False


def test_diff_against_a_named_version(api_client: Any, tick_strategy: Any, user: Any) -> None:
    version_create(definition=tick_strategy, author=user, source=TICK_OK_V2)
    version_create(definition=tick_strategy, author=user, source=TICK_OK)
    body = api_client.get(f"{versions_url(tick_strategy.id)}3/diff/?against=1").json()
    assert body["from_number"] == 1 and body["files"][0]["changed"] is False
    resp = api_client.get(f"{versions_url(tick_strategy.id)}3/diff/?against=7")
    upload_error(resp, attr="against")


def test_config_fields_keep_the_authors_order_through_the_database(tick_version: Any) -> None:
    # "window" before "side" as written; jsonb alone would return them sorted by key length.
    reloaded = StrategyVersion.objects.get(pk=tick_version.pk)
    assert reloaded.config_field_order == ["window", "side"]
    assert list(reloaded.config_schema_ordered) == ["window", "side"]
