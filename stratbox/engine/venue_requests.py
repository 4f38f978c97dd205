"""A person's "Reconcile now" on a live account: queued for a worker, which holds the credentials.

The web process never decrypts a live account's credentials or calls its venue; it enqueues
`engine.venue_reconcile` (after commit) and the page shows what that run stored.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from stratbox.engine.tasks import venue_reconcile_task
from stratbox.markets.quotes import redis_client
from stratbox.trading.models import Account
from tenants.services import audit_record

RECONCILE_REQUEST_KEY = "stratbox:venue:reconcile-requested:{account_id}"
RECONCILE_REQUEST_SECONDS = 10


def account_reconcile_request(*, account: Account, actor: Any) -> bool:
    """A person's "Reconcile now": enqueue the account's reconcile on a worker (the web process never
    decrypts credentials or calls the venue). Requests within a few seconds of one another are one
    (False: one is already on its way)."""
    key = RECONCILE_REQUEST_KEY.format(account_id=account.pk)
    if not redis_client().set(key, "1", nx=True, ex=RECONCILE_REQUEST_SECONDS):
        return False
    audit_record(tenant=account.tenant, actor=actor, action="venue.reconcile_requested", target=account)
    account_id = str(account.pk)
    transaction.on_commit(lambda: venue_reconcile_task.delay(account_id))
    return True
