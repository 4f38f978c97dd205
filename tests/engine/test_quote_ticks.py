"""Quote-triggered ticks (`trigger = quote`): a tick per quote of the instance's market, coalesced
(one in flight at most, exactly one more after a burst, with the newest quote), spaced by
`ENGINE_QUOTE_MIN_INTERVAL`; periodic instances untouched. In-process, against real Redis,
PostgreSQL and sandbox hosts: the dispatcher's steps are called directly and their batches run
the way `engine.run_ticks` runs them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stratbox.engine import runtime
from stratbox.engine.control import instance_pause, instance_resume
from stratbox.engine.dispatcher import dispatch_once
from stratbox.engine.models import Run
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks import tick as tick_module
from stratbox.engine.ticks.batch import batch_item, tick_run_batch
from stratbox.engine.ticks.tick import tick_run
from stratbox.instances.services import instance_update_config
from tenants.errors import ApplicationError
from tests.engine.conftest import make_instance, make_version, set_quote

PRICES = """
from sandbox.sdk import Strategy


class Prices(Strategy):
    CONFIG_SCHEMA = {"every": {"type": "int", "default": 0, "min": 0, "max": 100}}

    def init(self):
        return {"prices": []}

    def on_tick(self, tick):
        self.state["prices"].append(tick.price)
        every = self.config["every"]
        if every and len(self.state["prices"]) % every == 0:
            self.context.place_order("buy", 0.01)
"""


@pytest.fixture(autouse=True)
def _no_spacing(settings: Any) -> None:
    settings.ENGINE_QUOTE_MIN_INTERVAL = 0.0  # the spacing guard has its own test


@pytest.fixture
def prices_version(tenant: Any) -> Any:
    return make_version(tenant, PRICES, key="prices")


def _dispatch(now: float | None = None) -> list[list[Any]]:
    """One dispatcher step; the batches it sent, as a worker receives them."""
    sent: list[list[Any]] = []
    dispatch_once(now=time.time() if now is None else now, enqueue=lambda batch, eta: sent.append(batch))
    return sent


def _run(batches: list[list[Any]]) -> list[str]:
    statuses = []
    for batch in batches:
        statuses += [o.status for o in tick_run_batch([batch_item(item) for item in batch])]
    return statuses


def _prices(inst: Any) -> list[float]:
    rt = runtime.rt_get(str(inst.pk))
    assert rt is not None
    return rt["state"]["prices"]


def test_a_quote_instance_ticks_once_per_quote_when_quotes_are_slow(prices_version, paper_account, market):
    inst = make_instance(prices_version, paper_account, market, trigger="quote")
    reconcile()
    assert _dispatch(time.time() + 3600) == []  # no quote: no tick, and no period ever makes one
    seqs = []
    for price in (100.0, 101.5, 99.25):
        set_quote(market, price)
        batches = _dispatch()
        assert len(batches) == 1 and len(batches[0]) == 1
        iid, due, seq = batches[0][0]
        assert iid == str(inst.pk) and time.time() - 5 < due <= time.time()
        seqs.append(seq)
        assert _run(batches) == ["ok"]
        assert _dispatch() == []  # the tick ended with nothing newer: no second tick
    assert _prices(inst) == [100.0, 101.5, 99.25]
    assert seqs == sorted(set(seqs)) and all(runtime.is_quote_seq(s) for s in seqs)
    assert runtime.rt_get(str(inst.pk))["tick_seq"] == seqs[-1]
    runs = Run.objects.filter(instance=inst)
    assert runs.filter(tick_seq=seqs[0]).exists() and set(runs.values_list("trigger", flat=True)) == {"quote"}
    # Quotes that come while the tick is marked but not yet taken need no tick of their own: it
    # reads the newest quote when it runs.
    for price in (102.0, 103.0, 104.0):
        set_quote(market, price)
    assert _run(_dispatch()) == ["ok"] and _dispatch() == []
    assert _prices(inst)[-1] == 104.0 and len(_prices(inst)) == 4


def test_a_burst_while_a_tick_is_in_flight_gets_exactly_one_more_tick_with_the_newest_quote(
    prices_version, paper_account, market, monkeypatch
):
    inst = make_instance(prices_version, paper_account, market, trigger="quote", config={"every": 1})
    reconcile()
    real = tick_module.call_strategy
    burst = [100.0 + k for k in range(1, 11)]

    def in_flight(*args: Any, **kwargs: Any) -> Any:
        # The market quotes ten times while this tick runs (after its batch read the quote).
        while burst:
            set_quote(market, burst.pop(0))
        return real(*args, **kwargs)

    monkeypatch.setattr(tick_module, "call_strategy", in_flight)
    set_quote(market, 100.0)
    first = _dispatch()
    assert _run(first) == ["ok"] and _prices(inst) == [100.0]
    follow = _dispatch()
    assert len(follow) == 1 and len(follow[0]) == 1 and follow[0][0][2] > first[0][0][2]
    assert _run(follow) == ["ok"] and _prices(inst) == [100.0, 110.0]  # the newest quote, once
    assert _dispatch() == [] and _dispatch(time.time() + 30) == []  # nothing more, even much later
    # Each tick placed its order with its own seq: nothing doubled.
    from stratbox.trading.models import Order

    cids = sorted(Order.objects.filter(instance=inst).values_list("client_order_id", flat=True))
    assert cids == sorted(f"{inst.pk}-{b[0][0][2]}-1" for b in (first, follow))


def test_ticks_of_a_quote_instance_are_spaced_by_the_minimum_interval(
    prices_version, paper_account, market, settings
):
    settings.ENGINE_QUOTE_MIN_INTERVAL = 5.0
    inst = make_instance(prices_version, paper_account, market, trigger="quote")
    reconcile()
    set_quote(market, 100.0)
    taken_at = time.time()
    assert _run(_dispatch(taken_at)) == ["ok"]
    set_quote(market, 101.0)  # a hot market: the next quote right away
    assert _dispatch(taken_at + 4.9) == []  # not before the minimum interval
    assert _run(_dispatch(taken_at + 5.01)) == ["ok"]
    assert _prices(inst) == [100.0, 101.0]


def test_periodic_instances_are_unaffected_by_quotes(instance_factory, prices_version, paper_account, market):
    periodic = instance_factory(mode="observe")
    quoted = make_instance(prices_version, paper_account, market, trigger="quote")
    reconcile()
    due = int(time.time()) + 10 + runtime.phase(str(periodic.pk))
    runtime.schedule(str(periodic.pk), due)  # its slot well after the quote
    set_quote(market, 100.0)
    # Before its slot a quote queues only the quote instance; the periodic one keeps its slot.
    batches = _dispatch()
    assert [[item[0] for item in b] for b in batches] == [[str(quoted.pk)]]
    assert runtime.rt_get(str(periodic.pk))["next_due_at"] == due
    assert runtime.r().zscore(runtime.QBUSY_KEY, str(periodic.pk)) is None
    assert _run(batches) == ["ok"]
    # At its slot it is queued as a periodic `[id, due]` item, alone: the schedule never takes the
    # quote instance.
    batches = _dispatch(due + 0.001)
    assert len(batches) == 1 and len(batches[0]) == 1
    assert batches[0][0][0] == str(periodic.pk) and batches[0][0][1] == pytest.approx(due)
    assert len(batches[0][0]) == 2 and _run(batches) == ["ok"]
    assert runtime.rt_get(str(periodic.pk))["tick_seq"] == int(due) and _prices(quoted) == [100.0]


def test_switching_trigger_moves_the_instance_between_quotes_and_its_period(
    prices_version, paper_account, market, user
):
    inst = make_instance(prices_version, paper_account, market)
    reconcile()
    iid = str(inst.pk)
    assert runtime.r().zscore(runtime.DUE_KEY, iid) < time.time() + 10
    instance_update_config(instance=inst, actor=user, trigger="quote")
    reconcile([iid])
    assert runtime.r().zscore(runtime.DUE_KEY, iid) == float("inf")
    assert runtime.r().sismember(runtime.qsubs_key(market.pk), iid)
    set_quote(market, 100.0)
    assert _run(_dispatch()) == ["ok"]
    quote_seq = runtime.rt_get(iid)["tick_seq"]
    assert runtime.is_quote_seq(quote_seq)
    inst.refresh_from_db()
    instance_update_config(instance=inst, actor=user, trigger="interval")
    reconcile([iid])
    due = runtime.rt_get(iid)["next_due_at"]
    assert due is not None and not runtime.r().sismember(runtime.qsubs_key(market.pk), iid)
    set_quote(market, 101.0)
    assert _dispatch(due - 0.5) == []  # quotes no longer tick it
    # A periodic slot after a quote tick runs (the quote seq is no "newer slot").
    assert tick_run(iid, due).status == "ok" and _prices(inst) == [100.0, 101.0]
    assert runtime.rt_get(iid)["tick_seq"] == int(due)


def test_a_paused_quote_instance_is_not_ticked_until_resumed(prices_version, paper_account, market, user):
    inst = make_instance(prices_version, paper_account, market, trigger="quote")
    reconcile()
    assert instance_pause(instance=inst, actor=user)
    set_quote(market, 100.0)
    assert _dispatch() == []
    assert instance_resume(instance=inst, actor=user)
    set_quote(market, 101.0)
    assert _run(_dispatch()) == ["ok"] and _prices(inst) == [101.0]


def test_a_quote_wakes_the_dispatcher_and_a_lost_tick_is_marked_again(
    prices_version, paper_account, market, settings
):
    inst = make_instance(prices_version, paper_account, market, trigger="quote")
    reconcile()
    runtime.r().delete(runtime.QWAKE_KEY)
    assert runtime.quote_wait(0.01) is False
    set_quote(market, 100.0)
    assert runtime.quote_wait(1.0) is True  # no need to wait for the next grid point
    taken = _dispatch()
    assert len(taken) == 1
    # Its worker died with the batch: nothing ends the tick. After the stale bound it is queued again.
    stale = settings.ENGINE_QUEUED_STALE_SECONDS = 15.0
    set_quote(market, 101.0)
    assert _dispatch() == []
    again = _dispatch(time.time() + stale + 1)
    assert [[item[0] for item in b] for b in again] == [[str(inst.pk)]] and again[0][0][2] > taken[0][0][2]


def test_quote_instances_of_two_tenants_on_one_market_tick_apart(
    prices_version, paper_account, market, other_tenant, other_paper_account, api_client, other_api_client
):
    mine = make_instance(prices_version, paper_account, market, trigger="quote")
    theirs_version = make_version(other_tenant, PRICES, key="prices")
    theirs = make_instance(theirs_version, other_paper_account, market, trigger="quote")
    reconcile()
    set_quote(market, 100.0)
    batches = _dispatch()
    assert sorted(item[0] for b in batches for item in b) == sorted([str(mine.pk), str(theirs.pk)])
    assert _run(batches) == ["ok", "ok"]
    assert _prices(mine) == [100.0] and _prices(theirs) == [100.0]
    body = api_client.get(f"/api/v1/instances/{mine.pk}/runtime/").json()
    assert body["trigger"] == "quote" and body["tick_seq"] == runtime.rt_get(str(mine.pk))["tick_seq"]
    assert other_api_client.get(f"/api/v1/instances/{mine.pk}/runtime/").status_code == 404
    patch = other_api_client.patch(f"/api/v1/instances/{mine.pk}/", {"trigger": "interval"}, format="json")
    assert patch.status_code == 404
    mine.refresh_from_db()
    assert mine.trigger == "quote"


def test_the_trigger_is_validated_and_shown(prices_version, paper_account, market, api_client, user):
    inst = make_instance(prices_version, paper_account, market)
    url = f"/api/v1/instances/{inst.pk}/"
    assert api_client.get(url).json()["trigger"] == "interval"
    bad = api_client.patch(url, {"trigger": "sometimes"}, format="json")
    assert bad.status_code == 400
    assert [e["attr"] for e in bad.json()["errors"]] == ["trigger"]
    good = api_client.patch(url, {"trigger": "quote"}, format="json")
    assert good.status_code == 200 and good.json()["trigger"] == "quote"
    created = api_client.post(
        "/api/v1/instances/",
        {
            "name": "on quotes",
            "strategy": "prices",
            "account": str(paper_account.pk),
            "market": market.pk,
            "trigger": "every tick",
        },
        format="json",
    )
    assert created.status_code == 400 and [e["attr"] for e in created.json()["errors"]] == ["trigger"]
    with pytest.raises(ApplicationError) as err:
        instance_update_config(instance=inst, actor=user, trigger="bogus")
    assert list(err.value.errors) == ["trigger"]
    inst.refresh_from_db()
    assert inst.trigger == "quote"
