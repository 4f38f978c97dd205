"""order_place's cost (statements per order) and the guarantees the cheaper path must keep:
the tenant row is locked before the account row, and a retry gets its first order in every mode."""

from __future__ import annotations

import threading
import time
from decimal import Decimal as D

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stratbox.trading.models import Fill, Order, Position
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place

QUOTE_PRICE = 100


def _statements(ctx: CaptureQueriesContext) -> list[str]:
    """What reached the database, without the savepoints the test's own transaction adds."""
    sql = [q["sql"].strip() for q in ctx.captured_queries]
    return [s for s in sql if not s.startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def _placed(instance, intent, *, mode="active", quote=None):
    with CaptureQueriesContext(connection) as ctx:
        result = place(instance, intent, quote or make_quote(instance.market, QUOTE_PRICE), mode=mode)
    return result, _statements(ctx)


def test_an_active_market_buy_and_sell_take_four_statements(instance, intents, paper_account):
    # Lock tenant+account, read instance+exposure, insert the (filled) order, book the fill.
    buy, sql = _placed(instance, intents("buy", 2))
    assert buy.status == "filled" and len(sql) == 4, sql
    # The order row and its events (new -> accepted -> filled) are one statement.
    assert (
        "FOR UPDATE" in sql[0] and 'INSERT INTO "trading_order"' in sql[2] and "trading_orderevent" in sql[2]
    )
    sell, sql = _placed(instance, intents("sell", 1))
    assert sell.status == "filled" and len(sql) == 4, sql
    paper_account.refresh_from_db()
    assert paper_account.balance == D("99900")
    position = Position.objects.get(instance=instance, closed_at__isnull=True)
    assert (position.qty, position.cost_basis) == (D(1), D(100))
    assert Order.objects.get(pk=buy.order.pk).status == "filled"


def test_denials_and_resting_orders_take_three_statements(instance, intents):
    denied, sql = _placed(instance, intents("sell", 5))
    assert denied.deny_code == "INSUFFICIENT_POSITION" and len(sql) == 3, sql
    resting, sql = _placed(instance, intents("buy", 1, type="limit", price=90.0))
    assert resting.status == "accepted" and len(sql) == 3, sql


def test_a_shadow_order_takes_three_statements(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe")
    i = Intents(inst)
    # Read mode/kill switch/broker and lock the shadow position, insert the order, book the fill.
    buy, sql = _placed(inst, i("buy", 2), mode="observe")
    assert (buy.status, buy.order.filled_at) == ("shadow", NOW) and len(sql) == 3, sql
    sell, sql = _placed(inst, i("sell", 3), mode="observe")  # beyond the shadow position: not filled
    assert sell.order.filled_at is None and "exceeds the shadow position" in sell.message and len(sql) == 2
    resting, sql = _placed(inst, i("buy", 1, type="limit", price=90.0), mode="observe")
    assert resting.order.filled_at is None and len(sql) == 2, sql
    assert Fill.objects.filter(is_shadow=True).count() == 1


def _retry_everywhere(instance, intent, change):
    first = place(instance, intent, make_quote(instance.market, QUOTE_PRICE))
    change()
    for mode in ("active", "observe"):
        again = place(instance, dict(intent), make_quote(instance.market, 150), mode=mode)
        assert again.duplicate and again.order.pk == first.order.pk, (mode, again)
        assert again.status == first.status
    assert Order.objects.filter(client_order_id=intent["client_order_id"]).count() == 1
    assert Order.objects.count() == 1
    return first


@pytest.mark.parametrize("now_mode", ["active", "observe", "off"])
def test_a_retry_returns_the_first_order_whatever_the_mode_became(tenant, paper_account, market, now_mode):
    inst = make_instance(tenant, paper_account, market)
    intent = Intents(inst)("buy", 1)

    def change():
        inst.mode = now_mode
        inst.save()

    first = _retry_everywhere(inst, intent, change)
    assert first.status == "filled" and Fill.objects.count() == 1


def test_a_retry_after_the_kill_switch_returns_the_first_order(tenant, instance, intents):
    def kill():
        tenant.killed_at = NOW
        tenant.save()

    _retry_everywhere(instance, intents("buy", 1), kill)


def test_a_retried_shadow_order_is_one_order_and_one_shadow_fill(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe")
    intent = Intents(inst)("buy", 1)
    first = place(inst, intent, make_quote(market, 100), mode="observe")
    again = place(inst, dict(intent), make_quote(market, 100), mode="observe")
    assert again.duplicate and again.order.pk == first.order.pk
    assert Order.objects.count() == 1 and Fill.objects.count() == 1


def test_a_retry_whose_intent_no_longer_validates_still_gets_its_order(instance, intents):
    intent = intents("buy", 1)
    first = place(instance, intent, make_quote(instance.market, 100))
    again = place(instance, dict(intent, qty=float("nan")), make_quote(instance.market, 100))
    assert again.duplicate and again.order.pk == first.order.pk


def _conninfo() -> str:
    s = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None, host=s["HOST"], port=s["PORT"]
    )


@pytest.mark.django_db(transaction=True)
def test_the_tenant_row_is_locked_before_the_account_row(tenant, paper_account, market):
    """Hold the account row elsewhere: the order waits for it while already holding the tenant row."""
    inst = make_instance(tenant, paper_account, market)
    holder = psycopg.connect(_conninfo())
    probe = psycopg.connect(_conninfo(), autocommit=True)
    results = []

    def order():
        try:
            results.append(place(inst, Intents(inst)("buy", 1), make_quote(market, 100)))
        finally:
            connection.close()

    try:
        holder.execute("SELECT 1 FROM trading_account WHERE id = %s FOR UPDATE", [paper_account.pk])
        worker = threading.Thread(target=order)
        worker.start()
        deadline = time.monotonic() + 20
        waiting = False
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            waiting = probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE %s",
                ["%trading_account%FOR UPDATE%"],
            ).fetchone() == (1,)
        assert waiting, "the order never waited for the account row"
        with pytest.raises(psycopg.errors.LockNotAvailable):  # the tenant row is already the order's
            with probe.transaction():
                probe.execute("SELECT 1 FROM tenants_tenant WHERE id = %s FOR UPDATE NOWAIT", [tenant.pk])
        holder.rollback()
        worker.join(timeout=20)
    finally:
        holder.close()
        probe.close()
    assert [r.status for r in results] == ["filled"]
