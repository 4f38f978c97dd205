"""The batched trusted snapshot equals the per-instance one, in a constant number of queries."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from stratbox.engine.ticks.prefetch import prefetch
from stratbox.trading.models import Order
from stratbox.trading.selectors import instance_snapshot
from stratbox.trading.services.orders import order_place
from stratbox.trading.snapshot_cache import instance_snapshots_many


def _intent(inst, n, side="buy", qty=0.01, type_="market", price=None):
    return {
        "kind": "order",
        "client_order_id": f"{inst.pk}-1-{n}",
        "side": side,
        "qty": qty,
        "type": type_,
        "price": price,
        "tag": None,
    }


def test_batched_snapshots_equal_single_ones(instance_factory, quote, big_limits):
    now = timezone.now()
    filled = instance_factory(mode="active")
    resting = instance_factory(mode="active")
    shadow = instance_factory(mode="observe")
    idle = instance_factory(mode="active")
    for n in (1, 2):
        assert order_place(
            instance=filled, intent=_intent(filled, n), quote=quote, mode="active", now=now
        ).order
    res = order_place(
        instance=filled,
        intent=_intent(filled, 3, side="sell", qty=0.005),
        quote=quote,
        mode="active",
        now=now,
    )
    assert res.order.status == "filled"
    res = order_place(
        instance=resting,
        intent=_intent(resting, 1, type_="limit", price=50.0),
        quote=quote,
        mode="active",
        now=now,
    )
    assert res.order.status == "accepted"
    assert order_place(instance=shadow, intent=_intent(shadow, 1), quote=quote, mode="observe", now=now).order
    denied = order_place(
        instance=idle, intent=_intent(idle, 1, qty=1e6), quote=quote, mode="active", now=now
    )  # a rejected order is in the recent orders too
    assert denied.deny_code
    instances = [filled, resting, shadow, idle]
    for inst in instances:
        inst.refresh_from_db()
    quotes = {quote_market: quote for quote_market in {i.market_id for i in instances}}

    with CaptureQueriesContext(connection) as queries:
        many = instance_snapshots_many(instances=instances, quotes=quotes)
    assert len(queries) <= 5, [q["sql"] for q in queries]
    for inst in instances:
        single = instance_snapshot(instance=inst, quote=quote)
        assert many[inst.pk] == single, inst.mode
    # The cached snapshots are the same, computed once (miss) then served from Redis (hit).
    from stratbox.trading.snapshot_cache import instance_snapshots_cached

    assert instance_snapshots_cached(instances=instances, quotes=quotes) == many
    with CaptureQueriesContext(connection) as queries:
        assert instance_snapshots_cached(instances=instances, quotes=quotes) == many
    assert len(queries) == 1, [q["sql"] for q in queries]  # the balances only
    assert many[filled.pk]["position"] and many[filled.pk]["pnl"]["realized"] != "0"
    assert many[resting.pk]["deployed_capital"] != "0" and many[resting.pk]["position"] is None
    assert many[shadow.pk]["orders"][0]["status"] == "shadow"
    assert Order.objects.filter(instance=idle, status="rejected").count() == 1


def test_prefetch_reads_a_whole_batch_in_a_few_queries(instance_factory, quote):
    instances = [instance_factory(mode="observe") for _ in range(10)]
    with CaptureQueriesContext(connection) as queries:
        pre = prefetch([str(i.pk) for i in instances])
    assert len(queries) <= 6, [q["sql"] for q in queries]
    assert set(pre.snapshots) == {str(i.pk) for i in instances}


def test_instance_rows_are_reused_until_their_stamp_moves(instance_factory, quote, tenant):
    from stratbox.engine.ticks.rows import instances_for_batch
    from stratbox.instances.models import StrategyInstance

    inst = instance_factory(mode="observe")
    iid = str(inst.pk)
    first = instances_for_batch([iid])[iid]
    with CaptureQueriesContext(connection) as queries:
        again = instances_for_batch([iid])[iid]
    assert again is first and len(queries) == 1  # the stamp only
    # A mode change that bypasses save() (no updated_at) is still seen by the very next batch...
    StrategyInstance.objects.filter(pk=inst.pk).update(mode="active")
    assert instances_for_batch([iid])[iid].mode == "active"
    # ... and so is a kill switch set on the tenant row.
    type(tenant).objects.filter(pk=tenant.pk).update(killed_at=timezone.now())
    assert instances_for_batch([iid])[iid].tenant.killed_at is not None
    StrategyInstance.objects.filter(pk=inst.pk).delete()
    assert instances_for_batch([iid]) == {}


def test_a_cached_snapshot_is_recomputed_after_every_ledger_write(instance_factory, quote, big_limits):
    from stratbox.trading.services.orders import orders_cancel_open
    from stratbox.trading.snapshot_cache import instance_snapshots_cached

    inst = instance_factory(mode="active")
    quotes = {inst.market_id: quote}

    def cached():
        return instance_snapshots_cached(instances=[inst], quotes=quotes)[inst.pk]

    def reference():
        return instance_snapshots_many(instances=[inst], quotes=quotes)[inst.pk]

    assert cached()["orders"] == []
    now = timezone.now()
    order_place(instance=inst, intent=_intent(inst, 1), quote=quote, mode="active", now=now)
    assert len(cached()["orders"]) == 1 and cached() == reference()  # a filled market order
    order_place(
        instance=inst, intent=_intent(inst, 2, type_="limit", price=50.0), quote=quote, mode="active", now=now
    )
    assert cached()["deployed_capital"] == reference()["deployed_capital"] != "0"  # a resting one
    assert orders_cancel_open(instance=inst) == 1
    snap = cached()
    assert snap == reference() and sorted(o["status"] for o in snap["orders"]) == ["cancelled", "filled"]
    # Marks are never cached: a new price moves the unrealized P&L at once.
    moved = {inst.market_id: quote | {"price": quote["price"] * 2}}
    assert (
        instance_snapshots_cached(instances=[inst], quotes=moved)[inst.pk]["pnl"]
        == instance_snapshots_many(instances=[inst], quotes=moved)[inst.pk]["pnl"]
        != snap["pnl"]
    )


def test_any_change_of_a_related_row_is_seen_and_a_fill_is_not_a_change(
    instance_factory, quote, tenant, paper_account, market
):
    """The stamp covers every column of the instance's rows, except the balance that fills move."""
    from stratbox.engine.ticks.rows import instances_for_batch

    inst = instance_factory(mode="observe")
    iid = str(inst.pk)
    first = instances_for_batch([iid])[iid]
    type(paper_account).objects.filter(pk=paper_account.pk).update(balance=12345)
    balances: dict = {}
    assert instances_for_batch([iid], balances)[iid] is first  # not rebuilt for a balance
    assert balances[paper_account.pk] == 12345  # which is read fresh all the same
    type(market).objects.filter(pk=market.pk).update(lot_size="0.5")
    assert str(instances_for_batch([iid])[iid].market.lot_size) == "0.5000000000"
    type(tenant).objects.filter(pk=tenant.pk).update(capital_limit=777)
    assert instances_for_batch([iid])[iid].tenant.capital_limit == 777
    type(paper_account).objects.filter(pk=paper_account.pk).update(fee_bps=9)
    assert instances_for_batch([iid])[iid].account.fee_bps == 9
    type(inst).objects.filter(pk=inst.pk).update(max_positions=3)
    assert instances_for_batch([iid])[iid].max_positions == 3
