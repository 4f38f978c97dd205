"""Binary outcome contracts resolve: every open position in the market settles at 1 (the outcome
happened) or 0 (it did not), as a fee-free settlement fill that realises its P&L; resting orders
of the market are cancelled. The backtester's broker settles the same way (`SimBroker.settle`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from stratbox.markets.models import Market, MarketKind
from stratbox.trading.brokers import FillSpec
from stratbox.trading.models import Account, Order, OrderSide, OrderStatus, OrderType, Position
from stratbox.trading.services.ledger import fill_apply
from stratbox.trading.services.lifecycle import RESTING, orders_transition
from stratbox.trading.services.transitions import order_insert
from stratbox.trading.snapshot_cache import ledger_changed
from tenants.models import Tenant
from tenants.services import audit_record


class SettlementRefused(ValueError):
    """The market is not a binary contract, is already resolved, or the value is not 0 or 1."""


def market_resolve(*, market: Market, value: Decimal | int, now: datetime | None = None) -> int:
    """Resolve `market` at `value` (1 or 0) and settle its open positions; returns how many."""
    now = now or timezone.now()
    value = Decimal(value)
    if market.kind != MarketKind.BINARY:
        raise SettlementRefused(f"{market.code} is not a binary outcome contract")
    if value not in (Decimal(0), Decimal(1)):
        raise SettlementRefused("a binary contract settles at 1 or 0")
    with transaction.atomic():
        locked = Market.objects.select_for_update().get(pk=market.pk)
        if locked.resolved_at is not None:
            raise SettlementRefused(f"{market.code} resolved already at {locked.resolved_value}")
        locked.resolved_value, locked.resolved_at = value, now
        locked.save(update_fields=["resolved_value", "resolved_at"])
        orders_transition(
            Order.objects.filter(RESTING, market_id=market.pk),
            OrderStatus.CANCELLED,
            at=now,
            reason="market resolved",
        )
        touched: set[Any] = set()
        settled = 0
        for position_id, tenant_id, account_id, is_shadow in Position.objects.filter(
            market_id=market.pk, closed_at__isnull=True
        ).values_list("pk", "tenant_id", "account_id", "is_shadow"):
            account = None
            if not is_shadow:  # the lock order of every writer of capital: tenant, then account
                Tenant.objects.select_for_update().get(pk=tenant_id)
                account = Account.objects.select_for_update().get(pk=account_id)
            position = Position.objects.select_for_update().get(pk=position_id)
            order = Order(
                tenant_id=tenant_id,
                instance_id=position.instance_id,
                account_id=account_id,
                market_id=market.pk,
                client_order_id=f"settle-{market.pk}-{position.pk}",
                side=OrderSide.SELL if position.qty > 0 else OrderSide.BUY,
                type=OrderType.SETTLEMENT,
                qty=abs(position.qty),
                status=OrderStatus.SHADOW if is_shadow else OrderStatus.ACCEPTED,
                is_shadow=is_shadow,
                tag="settlement",
                created_at=now,
            )
            if not order_insert(order):  # the market row's lock makes this the only settlement
                raise SettlementRefused(f"{order.client_order_id} exists already")
            fill_apply(
                order=order,
                spec=FillSpec(qty=abs(position.qty), price=value, fee=Decimal(0)),
                account=account,
                now=now,
                position=position,
            )
            touched.add(position.instance_id)
            settled += 1
        audit_record(
            tenant=None,
            actor=None,
            action="market.resolve",
            target=locked,
            after={"value": str(value), "positions_settled": settled},
        )
        ledger_changed(list(touched))
    return settled
