"""The venue contract (contract.py) against both loopback venues, through their official clients.

The same scenarios run by hand against Alpaca's paper API (`make contract-alpaca`); running them
here keeps that manual test's code honest, and checks what the venue itself holds afterwards.
"""

from __future__ import annotations

from typing import Any

from stratbox.venues.registry import adapter_build
from tests.venues.conftest import SimVenue
from tests.venues.contract import run_contract


def test_every_contract_scenario_holds_and_the_venue_is_left_as_it_was(sim: SimVenue) -> None:
    wrong = {k: (v + "x" if "secret" in k else v) for k, v in sim.credentials.items()}
    passed = run_contract(sim.adapter(), sim.symbol, lambda: adapter_build(sim.name, wrong))
    assert len(passed) == 8, passed
    orders: list[Any] = list(sim.venue.orders.values())
    assert len(orders) == 1 and orders[0].status == "canceled" and orders[0].filled_qty == 0, orders
