"""The gate's one-statement read (`selectors.exposure_read`) equals the selectors it replaces.

Random ledgers exercise every filter the aggregates have (instance / tenant / account / market,
shadow, status, side, open / closed, today / other days, the 60 s rate window), and the gate's
decision — code, message and price — is compared with the gate as it was written before the
single read existed (kept below, verbatim, as the oracle).
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_is_valid, quote_set
from stratbox.trading.brokers import BrokerUnavailable, broker_for_account
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import Account, Fill, Order, OrderSide, OrderStatus, Position
from stratbox.trading.risk import (
    MAX_NOTIONAL,
    Deny,
    OrderRequest,
    RiskDecision,
    _money,
    instance_live_approval_is_current,
    max_orders_per_minute,
    pre_trade_evaluate,
)
from stratbox.trading.selectors import (
    exposure_read,
    instance_deployed_capital,
    instance_realized_pnl,
    instance_unrealized_pnl,
    open_cost_basis,
    open_position,
    open_positions_unrealized_pnl,
    pending_buy_notional,
    pending_sell_qty,
    tenant_deployed_capital,
)
from tests.factories import make_tenant
from tests.trading.conftest import NOW, make_instance

STATUSES = [s.value for s in OrderStatus]


def _dec(rng: random.Random, low: int, high: int, places: int = 8) -> D:
    return D(rng.randint(low * 10**places, high * 10**places)) / D(10**places)


def _instance_ledger(rng: random.Random, instance: Any, markets: list[Any]) -> None:
    """Positions, orders and fills of one instance, all over the filters' dimensions."""
    anchor = Position.objects.create(  # closed: what the fills below hang on
        tenant_id=instance.tenant_id,
        account_id=instance.account_id,
        instance=instance,
        market=markets[0],
        qty=0,
        opened_at=NOW - timedelta(days=3),
        closed_at=NOW - timedelta(days=2),
    )
    for market in markets:
        for shadow in (False, True):
            if rng.random() < 0.55:
                qty = _dec(rng, 0, 5)
                Position.objects.create(
                    tenant_id=instance.tenant_id,
                    account_id=instance.account_id,
                    instance=instance,
                    market=market,
                    is_shadow=shadow,
                    qty=qty,
                    cost_basis=q8(qty * _dec(rng, 50, 150)),
                    avg_price=D(100),
                    opened_at=NOW - timedelta(minutes=rng.randint(1, 5000)),
                )
            if rng.random() < 0.3:
                Position.objects.create(
                    tenant_id=instance.tenant_id,
                    account_id=instance.account_id,
                    instance=instance,
                    market=market,
                    is_shadow=shadow,
                    qty=0,
                    cost_basis=_dec(rng, 0, 100),
                    opened_at=NOW - timedelta(days=5),
                    closed_at=NOW - timedelta(days=4),
                )
    orders = []
    for n in range(rng.randint(0, 14)):
        status = rng.choice(STATUSES + [OrderStatus.ACCEPTED] * 3)
        limit = rng.random() < 0.7
        orders.append(
            Order.objects.create(
                tenant_id=instance.tenant_id,
                instance=instance,
                account_id=instance.account_id,
                market=rng.choice(markets) if rng.random() < 0.3 else instance.market,
                client_order_id=f"{instance.pk}-{n}-{uuid.uuid4().hex[:6]}",
                side=rng.choice(["buy", "sell"]),
                type="limit" if limit else "market",
                qty=_dec(rng, 0, 3),
                limit_price=_dec(rng, 80, 120) if limit else None,
                status=status,
                is_shadow=rng.random() < 0.2 or status == OrderStatus.SHADOW,
                created_at=NOW - timedelta(seconds=rng.choice([0, 1, 30, 59, 60, 61, 600, 90000])),
            )
        )
    for order in orders:  # one that filled in part reserves only its rest (no rng draw: same ledgers)
        if order.status == OrderStatus.PARTIALLY_FILLED:
            order.filled_qty = q8(order.qty * D("0.4"))
            order.save(update_fields=["filled_qty"])
    for order in orders[: rng.randint(0, len(orders))]:
        Fill.objects.create(
            order=order,
            tenant_id=instance.tenant_id,
            instance=instance,
            account_id=instance.account_id,
            market_id=order.market_id,
            position=anchor,
            side=order.side,
            qty=order.qty,
            price=D(100),
            fee=D("0.1"),
            realized_pnl=_dec(rng, -60, 40),
            is_shadow=rng.random() < 0.25,
            ts=rng.choice(
                [NOW, NOW - timedelta(hours=11), NOW + timedelta(hours=11), NOW - timedelta(days=1)]
            ),
        )


@pytest.fixture
def world(tenant: Any, paper_account: Any, market: Any) -> dict[str, Any]:
    """Two tenants, three accounts, three markets, five instances (four of the first tenant)."""
    markets = [market] + [Market.objects.create(venue="SIM", symbol=f"X{n}/USDT") for n in range(2)]
    second = Account.objects.create(tenant=tenant, name="Second", kind="paper")
    other = make_tenant("Other")
    foreign = Account.objects.create(tenant=other, name="Foreign", kind="paper")
    instances = [
        make_instance(tenant, paper_account, markets[0]),
        make_instance(tenant, paper_account, markets[1]),
        make_instance(tenant, second, markets[0]),
        make_instance(tenant, paper_account, markets[0]),
        make_instance(other, foreign, markets[0]),
    ]
    return {"markets": markets, "instances": instances, "tenant": tenant, "account": paper_account}


def _build(world: dict[str, Any], seed: int) -> random.Random:
    rng = random.Random(seed)
    for inst in world["instances"]:
        _instance_ledger(rng, inst, world["markets"])
    for m in world["markets"][1:]:
        if rng.random() < 0.6:  # other markets' marks come from their latest quote, when there is one
            price = float(_dec(rng, 60, 140, 2))
            quote_set(m.pk, {"market": m.code, "price": price, "bid": price, "ask": price, "volume": 1.0})
    return rng


def _old_recent(instance: Any, now: Any) -> int:
    return Order.objects.filter(
        instance_id=instance.pk,
        is_shadow=False,
        status__in=[
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
            OrderStatus.UNKNOWN,
        ],
        created_at__gt=now - timedelta(seconds=60),
    ).count()


def _old_pending_other(instance: Any) -> int:
    return (
        Order.objects.filter(
            instance_id=instance.pk,
            is_shadow=False,
            status__in=[OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED],
            side=OrderSide.BUY,
        )
        .exclude(
            market_id__in=Position.objects.filter(
                instance_id=instance.pk, is_shadow=False, closed_at__isnull=True
            ).values("market_id")
        )
        .values("market_id")
        .distinct()
        .count()
    )


def _same_position(a: Position | None, b: Position | None) -> bool:
    if a is None or b is None:
        return a is b
    fields = [f.attname for f in Position._meta.concrete_fields]
    return all(getattr(a, f) == getattr(b, f) for f in fields)


@pytest.mark.parametrize("seed", range(10))
def test_aggregates_equal_the_selectors(world, seed):
    _build(world, seed)
    for inst in world["instances"]:
        for market_id in {inst.market_id, world["markets"][2].pk}:
            args = {
                "instance_id": inst.pk,
                "tenant_id": inst.tenant_id,
                "account_id": inst.account_id,
                "market_id": market_id,
                "now": NOW,
            }
            _, sell = exposure_read(side="sell", **args)
            assert sell.recent_orders == _old_recent(inst, NOW)
            assert _same_position(sell.position, open_position(instance_id=inst.pk, market_id=market_id))
            assert sell.pending_sell_qty == pending_sell_qty(instance_id=inst.pk, market_id=market_id)

            fresh, buy = exposure_read(side="buy", with_instance=True, **args)
            assert buy.recent_orders == sell.recent_orders
            assert _same_position(buy.position, sell.position)
            assert buy.realized_today == instance_realized_pnl(instance_id=inst.pk, day=NOW.date())
            assert sorted(buy.open_positions) == sorted(
                Position.objects.filter(
                    instance_id=inst.pk, is_shadow=False, closed_at__isnull=True
                ).values_list("market_id", "qty", "cost_basis")
            )
            assert buy.open_cost_basis == open_cost_basis(instance_id=inst.pk)
            assert buy.pending_buy_here == pending_buy_notional(instance_id=inst.pk, market_id=market_id)
            assert buy.pending_buy == pending_buy_notional(instance_id=inst.pk)
            assert buy.pending_other_markets == _old_pending_other(inst)
            assert buy.tenant_open_cost_basis == open_cost_basis(tenant_id=inst.tenant_id)
            assert buy.tenant_pending_buy == pending_buy_notional(tenant_id=inst.tenant_id)
            assert buy.account_pending_buy == pending_buy_notional(account_id=inst.account_id)
            assert buy.instance_deployed_capital == instance_deployed_capital(instance_id=inst.pk)
            assert buy.tenant_deployed_capital == tenant_deployed_capital(tenant_id=inst.tenant_id)
            marks = {market_id: D("101.5")}
            assert open_positions_unrealized_pnl(buy.open_positions, marks) == instance_unrealized_pnl(
                instance_id=inst.pk, marks=marks
            )

            row = StrategyInstance.objects.get(pk=inst.pk)
            for f in StrategyInstance._meta.concrete_fields:
                assert getattr(fresh, f.attname) == getattr(row, f.attname), f.name
            assert not fresh._state.adding


def test_a_missing_instance_is_does_not_exist(instance):
    with pytest.raises(StrategyInstance.DoesNotExist):
        exposure_read(
            instance_id=uuid.uuid4(),
            tenant_id=instance.tenant_id,
            account_id=instance.account_id,
            market_id=instance.market_id,
            side="buy",
            now=NOW,
            with_instance=True,
        )


def _old_pre_trade_evaluate(*, instance, order_request, quote, now) -> RiskDecision:
    """`risk.pre_trade_evaluate` as it was before `exposure_read` (one ORM query per aggregate)."""
    tenant, account, req = instance.tenant, instance.account, order_request
    if tenant.killed_at is not None:
        return RiskDecision(Deny.KILL_SWITCH, "the tenant's kill switch is on")
    if instance.mode == Mode.OFF:
        return RiskDecision(Deny.MODE_OFF, "the instance is off")
    if instance.mode != Mode.ACTIVE:
        return RiskDecision(Deny.MODE_OBSERVE, "the instance is in observe mode: recorded as a shadow order")
    if account.kind != "paper" and not instance_live_approval_is_current(instance):
        return RiskDecision(Deny.NOT_APPROVED, "live trading needs a current staff approval")
    if not quote_is_valid(quote):
        return RiskDecision(Deny.NO_QUOTE, "no valid quote for the market")
    try:
        broker = broker_for_account(account)
    except BrokerUnavailable as exc:
        return RiskDecision(Deny.BROKER_UNAVAILABLE, str(exc))
    est = broker.estimate_price(side=req.side, type=req.type, limit_price=req.limit_price, quote=quote)
    notional = q8(req.qty * est)
    if notional > MAX_NOTIONAL:
        return RiskDecision(Deny.INVALID_ORDER, "notional is too large", est)

    limit = max_orders_per_minute()
    recent = _old_recent(instance, now)
    if recent >= limit:
        return RiskDecision(Deny.ORDER_RATE_LIMIT, f"at most {limit} orders per instance per minute", est)

    market_id = instance.market_id
    position = open_position(instance_id=instance.pk, market_id=market_id)
    if req.side == OrderSide.SELL:
        held = position.qty if position else D(0)
        available = held - pending_sell_qty(instance_id=instance.pk, market_id=market_id)
        if req.qty > available:
            return RiskDecision(
                Deny.INSUFFICIENT_POSITION,
                f"long-only: sell {req.qty.normalize()} exceeds the {available.normalize()} held and not already offered",
                est,
            )
        return RiskDecision(None, "", est)

    mark = D(str(quote["price"]))
    daily = instance_realized_pnl(instance_id=instance.pk, day=now.date()) + instance_unrealized_pnl(
        instance_id=instance.pk, marks={market_id: mark}
    )
    if daily < 0 and -daily >= instance.max_daily_loss:
        return RiskDecision(
            Deny.DAILY_LOSS_LIMIT,
            f"today's loss {_money(-daily)} reached max_daily_loss {instance.max_daily_loss}",
            est,
        )
    if notional > instance.capital_per_trade:
        return RiskDecision(
            Deny.CAPITAL_PER_TRADE_EXCEEDED,
            f"order notional {_money(notional)} exceeds capital_per_trade {instance.capital_per_trade}",
            est,
        )
    pending_here = pending_buy_notional(instance_id=instance.pk, market_id=market_id)
    if position is None and pending_here == 0:
        open_count = Position.objects.filter(
            instance_id=instance.pk, is_shadow=False, closed_at__isnull=True
        ).count()
        pending_other = _old_pending_other(instance)
        if open_count + pending_other >= instance.max_positions:
            return RiskDecision(
                Deny.MAX_POSITIONS_REACHED,
                f"{open_count + pending_other} of max_positions {instance.max_positions} open",
                est,
            )
    position_size = (position.cost_basis if position else D(0)) + pending_here + notional
    if position_size > instance.max_position_size:
        return RiskDecision(
            Deny.MAX_POSITION_SIZE_EXCEEDED,
            f"position would be {_money(position_size)}, above max_position_size {instance.max_position_size}",
            est,
        )
    deployed = instance_deployed_capital(instance_id=instance.pk)
    if deployed + notional > instance.total_capital:
        return RiskDecision(
            Deny.INSTANCE_CAPITAL_EXHAUSTED,
            f"deployed {_money(deployed)} + {_money(notional)} exceeds total_capital {instance.total_capital}",
            est,
        )
    tenant_deployed = tenant_deployed_capital(tenant_id=tenant.pk)
    if tenant_deployed + notional > tenant.capital_limit:
        return RiskDecision(
            Deny.TENANT_CAPITAL_LIMIT_EXCEEDED,
            f"tenant deployed {_money(tenant_deployed)} + {_money(notional)} exceeds capital_limit {tenant.capital_limit}",
            est,
        )
    fee = broker.fee_for(notional)
    reserved = pending_buy_notional(account_id=account.pk)
    reserved += broker.fee_for(reserved)
    if notional + fee + reserved > account.balance:
        return RiskDecision(
            Deny.INSUFFICIENT_BALANCE,
            f"needs {_money(notional + fee)} (+{_money(reserved)} reserved), balance {_money(account.balance)}",
            est,
        )
    return RiskDecision(None, "", est)


@pytest.mark.parametrize("seed", range(16))
def test_the_gate_decides_as_before(world, seed, settings):
    rng = _build(world, 100 + seed)
    settings.STRATBOX_MAX_ORDERS_PER_MINUTE = rng.choice([3, 60, 60, 60])
    tenant, account = world["tenant"], world["account"]
    tenant.capital_limit = _dec(rng, 50, 3000, 2)
    tenant.save()
    account.balance = _dec(rng, 20, 800)
    account.slippage_bps, account.fee_bps = _dec(rng, 0, 20, 2), _dec(rng, 0, 20, 2)
    account.save()
    seen = set()
    for _ in range(25):
        inst = StrategyInstance.objects.select_related("tenant", "account").get(
            pk=rng.choice(world["instances"][:4]).pk
        )
        inst.max_daily_loss = _dec(rng, 1, 80, 2)
        inst.capital_per_trade = _dec(rng, 10, 400, 2)
        inst.max_positions = rng.randint(1, 3)
        inst.max_position_size = _dec(rng, 10, 900, 2)
        inst.total_capital = _dec(rng, 10, 1500, 2)
        limit = rng.random() < 0.4
        req = OrderRequest(
            client_order_id=f"{inst.pk}-1-1",
            side=rng.choice(["buy", "sell"]),
            type="limit" if limit else "market",
            qty=_dec(rng, 0, 4, 4) or D("0.1"),
            limit_price=_dec(rng, 85, 115) if limit else None,
            tag="",
        )
        price = float(_dec(rng, 85, 115, 2))
        quote = {"price": price, "bid": price - 0.05, "ask": price + 0.05}
        new = pre_trade_evaluate(instance=inst, order_request=req, quote=quote, now=NOW)
        old = _old_pre_trade_evaluate(instance=inst, order_request=req, quote=quote, now=NOW)
        assert new == old, (req, quote)
        seen.add(new.deny)
    assert len(seen) >= 3  # the random ledgers reach several branches of the gate


@pytest.mark.parametrize("seed", range(4))
def test_daily_pnl_equals_realized_plus_unrealized(world, seed, monkeypatch):
    from stratbox.trading.selectors import instance_daily_pnl

    _build(world, 200 + seed)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)  # "today" is the ledger's day
    for inst in world["instances"]:
        for shadow in (False, True):
            for marks in ({inst.market_id: D("97.25")}, None):
                for day in (NOW.date(), NOW.date() - timedelta(days=1)):
                    expected = instance_realized_pnl(instance_id=inst.pk, shadow=shadow, day=day)
                    if day == NOW.date():
                        expected += instance_unrealized_pnl(instance_id=inst.pk, shadow=shadow, marks=marks)
                    got = instance_daily_pnl(instance=inst, day=day, shadow=shadow, marks=marks)
                    assert got == expected, (inst.pk, shadow, marks, day)
