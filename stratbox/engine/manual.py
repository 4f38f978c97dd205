"""Orders a user places by hand on an instance's behalf: closing its open position.

The order is an ordinary intent through `trading.services.order_place` — the same validation, mode
re-read, risk gate, row locks and idempotent client_order_id as a strategy's — so a manual close
can never bypass a limit: observe mode records it as a shadow order, off and the kill switch deny
it. It is audited and pushed to the dashboard like any other action.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from stratbox.engine import events
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.quotes import quote_get
from stratbox.trading.models import Position
from stratbox.trading.risk import client_order_id_prefix
from stratbox.trading.services import OrderResult, order_place
from tenants.services import audit_record


class NothingToClose(Exception):
    """The instance holds no open position in its ledger."""


def position_close(*, instance: StrategyInstance, position_id: Any, actor: Any) -> OrderResult:
    """Sell the whole open position `position_id` of `instance` at market (its current ledger:
    the real one when active, the shadow one otherwise)."""
    shadow = instance.mode != Mode.ACTIVE
    position = Position.objects.filter(
        pk=position_id, instance=instance, is_shadow=shadow, closed_at__isnull=True
    ).first()
    if position is None or position.qty <= 0:
        raise NothingToClose("No open position to close.")
    intent = {
        # A fresh id per click: a double submit is two orders, the second finding nothing to sell
        # beyond what is held (the gate floors a sell to the position).
        "client_order_id": f"{client_order_id_prefix(instance)}manual{time.time_ns() // 1_000_000}-1",
        "side": "sell",
        "qty": float(position.qty),
        "type": "market",
        "price": None,
        "tag": "manual close",
    }
    result = order_place(
        instance=instance,
        intent=intent,
        quote=quote_get(instance.market_id),
        mode=instance.mode,
        now=timezone.now(),
    )
    audit_record(
        tenant=instance.tenant,
        actor=actor,
        action="position.close",
        target=instance,
        after={
            "position": str(position.pk),
            "qty": str(position.qty),
            "status": result.status,
            "deny_code": result.deny_code,
        },
    )
    order = result.order
    events.publish(
        tenant_id=instance.tenant_id,
        instance_id=instance.pk,
        kind="action",
        data={
            "kind": "shadow" if result.status == "shadow" else ("denied" if result.deny_code else "order"),
            "client_order_id": intent["client_order_id"],
            "side": "sell",
            "qty": float(position.qty),
            "type": "market",
            "price": float(order.fill_price) if order is not None and order.fill_price is not None else None,
            "tag": intent["tag"],
            "status": result.status,
            "deny_code": result.deny_code,
            "message": result.message or "",
            "order_id": str(order.pk) if order is not None else None,
        },
    )
    return result
