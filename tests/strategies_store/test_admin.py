"""Admin: definitions list and edit through the service; versions are read-only."""

from __future__ import annotations

from typing import Any

import pytest

from tenants.models import AuditEvent
from tests.strategies_store.conftest import TICK_OK

pytestmark = pytest.mark.django_db


def test_admin_pages_render_and_versions_are_read_only(admin_client: Any, tick_version: Any) -> None:
    definition = tick_version.definition
    assert admin_client.get("/admin/strategies_store/strategydefinition/").status_code == 200
    assert (
        admin_client.get(f"/admin/strategies_store/strategydefinition/{definition.pk}/change/").status_code
        == 200
    )
    assert admin_client.get("/admin/strategies_store/strategyversion/").status_code == 200
    page = admin_client.get(f"/admin/strategies_store/strategyversion/{tick_version.pk}/change/")
    assert page.status_code == 200
    resp = admin_client.post(
        f"/admin/strategies_store/strategyversion/{tick_version.pk}/change/", {"source": "x = 1", "number": 9}
    )
    assert resp.status_code == 403
    tick_version.refresh_from_db()
    assert tick_version.source == TICK_OK and tick_version.number == 1
    assert admin_client.get("/admin/strategies_store/strategyversion/add/").status_code == 403
    assert admin_client.get("/admin/strategies_store/strategydefinition/add/").status_code == 403


def test_admin_edit_goes_through_the_service(admin_client: Any, tick_strategy: Any) -> None:
    url = f"/admin/strategies_store/strategydefinition/{tick_strategy.pk}/change/"
    resp = admin_client.post(
        url,
        {
            "name": "Admin renamed",
            "description": tick_strategy.description,
            "thesis": "",
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
        },
    )
    assert resp.status_code == 302, resp.content[:3000]
    tick_strategy.refresh_from_db()
    assert tick_strategy.name == "Admin renamed"
    assert AuditEvent.objects.filter(action="strategy.update", after__name="Admin renamed").exists()
