"""Concurrent ticks of many instances of one tenant never exceed a capital limit (real PostgreSQL).

Each thread has its own database connection (Django gives every thread one) and places orders
for its instance at the same moment as the others. Without the tenant/account row locks the
check-then-fill would interleave and overshoot; with them the totals land exactly on the limit.
"""

from __future__ import annotations

import threading
from decimal import Decimal as D

import pytest
from django.db import connection

from stratbox.trading.models import Fill, Order, Position
from stratbox.trading.selectors import instance_deployed_capital, tenant_deployed_capital
from tests.trading.conftest import make_instance, make_quote, place


@pytest.mark.django_db(transaction=True)
def test_concurrent_orders_never_exceed_tenant_or_instance_limits(tenant, paper_account, market, settings):
    settings.STRATBOX_MAX_ORDERS_PER_MINUTE = 1000
    tenant.capital_limit = D("1000")
    tenant.save()
    # 4 instances x 400 allowed = 1600 wanted, but the tenant allows 1000: exactly 10 fills of 100.
    instances = [
        make_instance(
            tenant,
            paper_account,
            market,
            total_capital=D("400"),
            capital_per_trade=D("100"),
            max_position_size=D("400"),
        )
        for _ in range(4)
    ]
    quote = make_quote(market, 100)
    threads_per_instance, orders_per_thread = 2, 5
    barrier = threading.Barrier(len(instances) * threads_per_instance)
    errors: list[BaseException] = []

    def worker(inst, t):
        try:
            barrier.wait(timeout=30)
            for n in range(orders_per_thread):
                intent = {
                    "client_order_id": f"{inst.pk}-{t}-{n}",
                    "side": "buy",
                    "qty": 1.0,
                    "type": "market",
                }
                place(inst, intent, quote)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=worker, args=(inst, t))
        for inst in instances
        for t in range(threads_per_instance)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not errors, errors
    assert Order.objects.count() == len(threads) * orders_per_thread  # every intent was recorded once

    assert tenant_deployed_capital(tenant_id=tenant.pk) == D("1000")
    for inst in instances:
        assert instance_deployed_capital(instance_id=inst.pk) <= D("400")
    assert Fill.objects.count() == 10
    denied = set(Order.objects.filter(status="rejected").values_list("deny_code", flat=True))
    assert denied <= {
        "TENANT_CAPITAL_LIMIT_EXCEEDED",
        "INSTANCE_CAPITAL_EXHAUSTED",
        "MAX_POSITION_SIZE_EXCEEDED",
    }
    assert "TENANT_CAPITAL_LIMIT_EXCEEDED" in denied
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000") - D("1000")
    assert sum(p.cost_basis for p in Position.objects.all()) == D("1000")


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_client_order_id_place_one_order(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market)
    intent = {"client_order_id": f"{inst.pk}-9-0", "side": "buy", "qty": 1.0, "type": "market"}
    barrier = threading.Barrier(6)
    results = []

    def worker():
        try:
            barrier.wait(timeout=30)
            results.append(place(inst, dict(intent), make_quote(market, 100)))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert len({r.order.pk for r in results}) == 1
    assert Order.objects.count() == 1 and Fill.objects.count() == 1
    paper_account.refresh_from_db()
    assert paper_account.balance == D("99900")
