"""Tenant services and the append-only audit log at the database level."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import DatabaseError, transaction

from tenants.errors import ApplicationError
from tenants.models import AuditEvent, Membership, Role, Tenant
from tenants.selectors import membership_get, token_get_active
from tenants.services import (
    membership_delete,
    membership_set_role,
    tenant_set_capital_limit,
    tenant_update,
    token_create,
    token_revoke,
)
from tests.factories import add_member


def test_audit_rows_cannot_be_updated_or_deleted(tenant: Tenant) -> None:
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.create")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.action == "tenant.create"


def test_deleting_a_user_keeps_their_events(tenant: Tenant, user: Any) -> None:
    other_owner = add_member(tenant, role="owner")
    tenant_update(tenant=tenant, actor=other_owner, name="Renamed")
    other_owner.delete()  # the one permitted change: actor becomes NULL, the label stays
    event = AuditEvent.objects.get(tenant=tenant, action="tenant.update")
    assert event.actor_id is None
    assert event.actor_label == other_owner.email


def test_capital_limit_service_audits_only_real_changes(tenant: Tenant, user: Any) -> None:
    tenant_set_capital_limit(tenant=tenant, actor=user, capital_limit=Decimal("100000.00"))
    assert not AuditEvent.objects.filter(action="tenant.capital_limit").exists()
    tenant_set_capital_limit(tenant=tenant, actor=user, capital_limit=Decimal("1.50"))
    assert AuditEvent.objects.filter(action="tenant.capital_limit").count() == 1
    with pytest.raises(ApplicationError) as excinfo:
        tenant_set_capital_limit(tenant=tenant, actor=user, capital_limit=Decimal("-1"))
    assert (excinfo.value.field, excinfo.value.code) == ("capital_limit", "NEGATIVE_CAPITAL_LIMIT")
    tenant.refresh_from_db()
    assert tenant.capital_limit == Decimal("1.50")


def test_last_owner_rule_in_services(tenant: Tenant, user: Any) -> None:
    owner = Membership.objects.get(tenant=tenant, user=user)
    with pytest.raises(ApplicationError, match="last owner"):
        membership_set_role(membership=owner, actor=user, role=Role.VIEWER)
    with pytest.raises(ApplicationError, match="last owner"):
        membership_delete(membership=owner, actor=user)
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_revoked_token_no_longer_resolves(tenant: Tenant, user: Any) -> None:
    issued = token_create(tenant=tenant, user=user, name="x")
    assert token_get_active(plaintext=issued.plaintext) == issued.token
    token_revoke(token=issued.token, actor=user)
    assert token_get_active(plaintext=issued.plaintext) is None


def test_membership_get_tolerates_garbage_tenant_ids(tenant: Tenant, user: Any) -> None:
    assert membership_get(user=user, tenant_id="not-a-uuid") is None
    assert membership_get(user=user).tenant == tenant


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner() -> None:
    """The tenant row lock serialises the last-owner check: racing demotions cannot both win."""
    import threading

    from django.db import connection

    from tests.factories import make_tenant, make_user

    first, second = make_user(), make_user()
    tenant = make_tenant("Race", owner=first)
    add_member(tenant, role="owner", user=second)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(actor: Any, target: Any) -> None:
        try:
            membership = Membership.objects.select_related("tenant").get(tenant=tenant, user=target)
            barrier.wait(timeout=5)
            membership_set_role(membership=membership, actor=actor, role=Role.MEMBER)
            outcomes.append("ok")
        except ApplicationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=demote, args=(first, second)),
        threading.Thread(target=demote, args=(second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(outcomes) == ["ok", "refused"]
    assert Membership.objects.filter(tenant=tenant, role=Role.OWNER).count() == 1
