"""Order status changes reach the live feed of the order's tenant (and instance), never another's."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from tests.realtime.conftest import drain, open_socket, receive_until, run
from tests.trading.conftest import NOW, Intents, make_quote

pytestmark = pytest.mark.django_db(transaction=True)


def _rest_and_cancel(instance: Any, market: Any) -> str:
    """A limit that rests (new -> accepted), then cancelled by its strategy; each commits."""
    from stratbox.instances.models import StrategyInstance
    from stratbox.trading.services.lifecycle import order_cancel
    from stratbox.trading.services.orders import order_place

    StrategyInstance.objects.filter(pk=instance.pk).update(mode="active")
    intent = Intents(instance)("buy", 0.01, type="limit", price=90.0)  # max_position_size 1
    placed = order_place(
        instance=instance, intent=intent, quote=make_quote(market, 100), mode="active", now=NOW
    )
    assert placed.status == "accepted", placed
    assert order_cancel(instance=instance, client_order_id=intent["client_order_id"], now=NOW)
    return str(placed.order.pk)


def test_order_events_reach_the_right_tenant_only(
    instance: Any, other_instance: Any, token: str, other_token: str, market: Any
) -> None:
    async def body() -> tuple[Any, ...]:
        mine, _ = await open_socket("/ws/tenant/", token=token)
        watching, _ = await open_socket(f"/ws/instances/{instance.pk}/", token=token)
        theirs, _ = await open_socket("/ws/tenant/", token=other_token)
        order_id = await database_sync_to_async(_rest_and_cancel)(instance, market)
        on_tenant = await receive_until(mine, 2)
        on_instance = await receive_until(watching, 2)
        leaked = await drain(theirs)
        # The other socket is live: its own tenant's order does reach it.
        other_order = await database_sync_to_async(_rest_and_cancel)(other_instance, market)
        own = await receive_until(theirs, 2)
        extra = await drain(mine)
        for comm in (mine, watching, theirs):
            await comm.disconnect()
        return order_id, on_tenant, on_instance, leaked, other_order, own, extra

    order_id, on_tenant, on_instance, leaked, other_order, own, extra = run(body)
    for got in (on_tenant, on_instance):
        assert [m["kind"] for m in got] == ["order", "order"]
        assert all(m["instance_id"] == str(instance.pk) and m["data"]["order_id"] == order_id for m in got)
        assert [(m["data"]["from"], m["data"]["to"]) for m in got] == [
            ("new", "accepted"),
            ("accepted", "cancelled"),
        ]
        assert got[1]["data"]["reason"] == "cancelled by the strategy"
    assert leaked == []
    assert [m["data"]["order_id"] for m in own] == [other_order] * 2
    assert extra == []
