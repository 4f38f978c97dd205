"""`graduation_ready`: a paper instance that first meets its criteria notifies its tenant once per
code version (the beat sweep), in the tenant's locale; one that does not, never."""

from __future__ import annotations

from typing import Any

import pytest

from stratbox.governance.graduation_notify import graduation_notify_sweep
from stratbox.instances.models import StrategyInstance
from stratbox.notifications.models import NotificationEvent
from tests.governance.conftest import graduate

pytestmark = pytest.mark.django_db


def test_graduation_ready_once_per_version(paper_instance: Any, tenant: Any) -> None:
    StrategyInstance.objects.filter(pk=paper_instance.pk).update(mode="active")
    assert graduation_notify_sweep() == 0  # no record yet
    graduate(paper_instance)
    assert graduation_notify_sweep() == 1
    (event,) = NotificationEvent.objects.filter(event_type="graduation_ready")
    assert event.instance_id == paper_instance.pk and event.tenant_id == tenant.pk
    assert event.title == f"{paper_instance.name} meets the graduation criteria"
    assert all(c["met"] for c in event.payload["criteria"])
    assert graduation_notify_sweep() == 0  # once per version
    assert NotificationEvent.objects.filter(event_type="graduation_ready").count() == 1


def test_not_eligible_never_notifies(paper_instance: Any) -> None:
    StrategyInstance.objects.filter(pk=paper_instance.pk).update(mode="active")
    graduate(paper_instance, wins=5, losses=15)
    assert graduation_notify_sweep() == 0
    assert not NotificationEvent.objects.filter(event_type="graduation_ready").exists()
