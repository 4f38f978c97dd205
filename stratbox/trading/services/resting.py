"""Resting orders meet a new quote: expiry, then fills by the one fill model, each in its own
transaction under the tenant then account row locks (the order every writer of capital takes)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q

from sandbox import fillmodel as fm
from sandbox.sessions import session_parse
from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_is_valid
from stratbox.trading.brokers import PaperBroker, broker_for_account
from stratbox.trading.models import Account, Order, OrderSide, OrderStatus, OrderType, Position, TimeInForce
from stratbox.trading.risk import Deny
from stratbox.trading.services.ledger import fill_apply
from stratbox.trading.services.lifecycle import (
    LIVE_REAL,
    RESTING,
    order_after_fill,
    orders_expire,
    reduce_only_qty,
)
from stratbox.trading.snapshot_cache import ledger_changed
from tenants.models import Tenant


def orders_mark_to_market(
    *, market_id: int, quote: dict[str, Any], now: datetime, trading_hours: dict[str, Any] | None = None
) -> list[Order]:
    """Expire, then fill the resting orders (real and shadow) of a market that `quote` reaches.

    Outside the market's trading hours (`trading_hours`, read here when not given) nothing fills:
    orders still expire, and IOC / FOK ones checked for the first time are cancelled.

    The fill model decides (`PaperBroker.fill_resting`: limits touched, stops triggered on the
    quote's bar, each fill capped by the size on offer: partial fills leave the order
    `partially_filled` and resting for the next quote); stops are visited before limits, the conservative order of events. A fill sets
    off its bracket legs, its OCO sibling's end and the end of reduce-only orders whose position
    is gone (`lifecycle.order_after_fill`).
    """
    if not quote_is_valid(quote):
        return []
    orders_expire(market_id=market_id, now=now)
    ask, bid = Decimal(str(quote["ask"])), Decimal(str(quote["bid"]))
    low = min(ask, Decimal(str(quote["low"]))) if type(quote.get("low")) in (int, float) else ask
    high = max(bid, Decimal(str(quote["high"]))) if type(quote.get("high")) in (int, float) else bid
    reachable = (
        Q(type=OrderType.LIMIT, side=OrderSide.BUY, limit_price__gte=low)
        | Q(type=OrderType.LIMIT, side=OrderSide.SELL, limit_price__lte=high)
        | Q(type__in=[OrderType.STOP, OrderType.STOP_LIMIT, OrderType.MARKET])
    )
    candidates = sorted(
        Order.objects.filter(RESTING, reachable, market_id=market_id)
        .exclude(LIVE_REAL)  # a live order rests at its venue: never filled by our quotes
        .order_by("created_at", "id")
        .values_list("pk", "is_shadow", "tenant_id", "account_id", "type", "tif"),
        key=lambda row: 1 if row[4] == OrderType.LIMIT else 0,  # stops first
    )
    closed = bool(candidates) and _closed(market_id, trading_hours, now)
    if closed:
        candidates = [row for row in candidates if row[5] in (TimeInForce.IOC, TimeInForce.FOK)]
    filled: list[Order] = []
    for order_id, is_shadow, tenant_id, account_id, _type, _tif in candidates:
        with transaction.atomic():
            order = _fill_one_resting(
                order_id, is_shadow, tenant_id, account_id, market_id, quote, now, closed
            )
            if order is not None:
                filled.append(order)
    return filled


def _closed(market_id: int, trading_hours: dict[str, Any] | None, now: datetime) -> bool:
    if trading_hours is None:
        trading_hours = Market.objects.filter(pk=market_id).values_list("trading_hours", flat=True).first()
    session = session_parse(trading_hours)
    return session is not None and session.window_at(now.timestamp()) is None


def _fill_one_resting(
    order_id: Any,
    is_shadow: bool,
    tenant_id: Any,
    account_id: Any,
    market_id: int,
    quote: Any,
    now: datetime,
    closed: bool = False,
) -> Order | None:
    account = None
    if not is_shadow:
        tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
        account = Account.objects.select_for_update().get(pk=account_id)
        if tenant.killed_at is not None:
            return None  # a killed tenant trades nothing, not even resting orders
    order = Order.objects.select_for_update().filter(RESTING, pk=order_id).first()
    if order is None:
        return None
    paper = Account.objects.get(pk=account_id) if account is None else account
    broker = broker_for_account(account) if account else PaperBroker.for_account(paper)
    was_triggered = order.triggered
    fills = [] if closed else broker.fill_resting(order, quote)
    if not fills:
        if order.tif in (TimeInForce.IOC, TimeInForce.FOK):  # checked once (next_open), then gone
            _end_resting(order, OrderStatus.CANCELLED, f"{order.tif}: not filled at once", now)
        elif order.triggered != was_triggered:
            order.save(update_fields=["triggered"])
        return None
    position = Position.objects.filter(
        instance_id=order.instance_id, market_id=market_id, is_shadow=is_shadow, closed_at__isnull=True
    ).first()
    spec = fills[0]
    if order.reduce_only:
        qty = reduce_only_qty(order.side, spec.qty, position)
        if qty <= 0:
            _end_resting(order, OrderStatus.CANCELLED, "reduce-only: no position to reduce", now)
            return None
        if qty != spec.qty:
            spec = broker.fill_spec(qty, spec.price)[0] if isinstance(broker, PaperBroker) else spec
    held = position.qty if position is not None else Decimal(0)
    reduces = held != 0 and (held > 0) != (order.side == OrderSide.BUY) and spec.qty <= abs(held)
    if not reduces:
        allow_short = paper.allow_short
        if order.side == OrderSide.SELL and held - spec.qty < 0 and not allow_short:
            if not is_shadow:
                _deny_resting(
                    order, Deny.INSUFFICIENT_POSITION, "the position was reduced before the sell filled", now
                )
            return None
        if account is not None:
            signed = spec.qty if order.side == OrderSide.BUY else -spec.qty
            code = fm.margin_problem(
                held, signed, spec.price, spec.fee, account.balance, Decimal(account.leverage), allow_short
            )
            if code is not None:
                _deny_resting(order, Deny(code), "balance too low when the order was reached", now)
                return None
    fill = fill_apply(order=order, spec=spec, account=account, now=now)
    order_after_fill(order, fill.position, held, now, spec.qty)
    if order.tif in (TimeInForce.IOC, TimeInForce.FOK) and order.filled_qty < order.qty:
        _end_resting(order, OrderStatus.CANCELLED, f"{order.tif}: not filled at once", now)  # IOC's rest
    return order


def _end_resting(order: Order, status: str, reason: str, now: datetime) -> None:
    if order.is_shadow:
        order.cancelled_at = now
        order.deny_reason = reason
        order.save(update_fields=["cancelled_at", "deny_reason"])
    else:
        order.status = status
        order.cancelled_at = now
        order.deny_reason = reason
        order.save(update_fields=["status", "cancelled_at", "deny_reason"])
    ledger_changed([order.instance_id])


def _deny_resting(order: Order, deny: Deny, reason: str, now: datetime) -> None:
    order.status = OrderStatus.REJECTED
    order.deny_code = deny
    order.deny_reason = reason
    order.cancelled_at = now
    order.save(update_fields=["status", "deny_code", "deny_reason", "cancelled_at"])
    ledger_changed([order.instance_id])
