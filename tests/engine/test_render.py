"""Rendering on demand: render() runs only for watched instances (after a tick) or when the API asks.

The strategy below counts its own render() calls in its state. The host's state is what the next
tick persists to Redis, so the count is observable from outside the sandbox: an instance whose
render() never ran never shows a count.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from stratbox.engine import events, rendering, runtime, watch
from stratbox.engine.control import instance_pause
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.batch import tick_run_batch
from tests.engine.conftest import make_instance, make_version

RENDER_COUNTER = """
from sandbox.sdk import Strategy


class Rendered(Strategy):
    def init(self):
        return {"n": 0, "renders": 0}

    def on_tick(self, tick):
        self.state["n"] += 1

    def render(self):
        self.state["renders"] += 1
        return {"widgets": [
            {"type": "metric", "label": "renders", "value": self.state["renders"]},
            {"type": "metric", "label": "ticks", "value": self.state["n"]},
        ]}
"""


@pytest.fixture
def no_render_limit(settings):
    settings.ENGINE_RENDER_MIN_INTERVAL = 0  # ticks back to back in a test: no per-instance limit


@pytest.fixture
def rendered_version(tenant):
    return make_version(tenant, RENDER_COUNTER, key="rendered")


def _state(inst):
    return runtime.rt_get(str(inst.pk))["state"]


def _tick_all(instances, k):
    """Run k consecutive slots of every instance as one batch per slot (what a run_ticks task does)."""
    rts = {str(i.pk): runtime.rt_get(str(i.pk)) for i in instances}
    base = {iid: int(rt["tick_seq"] + 1 if rt["tick_seq"] else rt["next_due_at"]) for iid, rt in rts.items()}
    out = []
    for step in range(k):
        out.append(tick_run_batch([(iid, slot + step) for iid, slot in base.items()]))
    return out


async def _drain(layer, channel, timeout=0.5):
    got = []
    try:
        while True:
            got.append(await asyncio.wait_for(layer.receive(channel), timeout))
    except TimeoutError:
        return got


def _subscribe(inst):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(events.instance_group(inst.pk), channel)
    return layer, channel


def test_only_watched_instances_are_rendered_after_a_tick(
    rendered_version, paper_account, market, quote, no_render_limit, django_capture_on_commit_callbacks
):
    watched = make_instance(rendered_version, paper_account, market)
    unwatched = make_instance(rendered_version, paper_account, market)
    reconcile()
    watch.watch_touch(watched.pk, 15, watcher="browser-1")
    layer, watched_ch = _subscribe(watched)
    _, unwatched_ch = _subscribe(unwatched)

    with django_capture_on_commit_callbacks(execute=True):  # events are sent after commit
        results = _tick_all([watched, unwatched], 3)
    assert all(o.status == "ok" for batch in results for o in batch)

    # render() ran after each of the first two ticks of the watched instance (the third tick
    # persisted the count of the first two); never for the unwatched one.
    assert _state(watched) == {"n": 3, "renders": 2}
    assert _state(unwatched) == {"n": 3, "renders": 0}

    widgets = [m for m in async_to_sync(_drain)(layer, watched_ch) if m["kind"] == "widgets"]
    assert [m["data"]["widgets"][0]["value"] for m in widgets] == [1, 2, 3]
    assert [m["data"]["widgets"][1]["value"] for m in widgets] == [1, 2, 3]  # rendered after its tick
    assert [m["seq"] for m in widgets] == sorted(m["seq"] for m in widgets)
    others = async_to_sync(_drain)(layer, unwatched_ch)
    assert others and not [m for m in others if m["kind"] == "widgets"]  # logs/runs yes, widgets never


def test_a_watch_that_lapses_or_is_released_stops_rendering(
    rendered_version, paper_account, market, quote, no_render_limit
):
    inst = make_instance(rendered_version, paper_account, market)
    reconcile()
    watch.watch_touch(inst.pk, 15, watcher="browser-1")
    _tick_all([inst], 1)
    assert watch.watch_release(inst.pk, "browser-1") == 0  # a clean disconnect
    _tick_all([inst], 2)
    assert _state(inst) == {"n": 3, "renders": 1}
    watch.watch_touch(inst.pk, 0.2, watcher="browser-2")  # a browser that stops sending heartbeats
    _tick_all([inst], 1)
    time.sleep(0.3)
    _tick_all([inst], 2)
    assert _state(inst) == {"n": 6, "renders": 2}


def test_a_paused_watched_instance_renders_nothing(
    rendered_version, paper_account, market, quote, no_render_limit, user, django_capture_on_commit_callbacks
):
    inst = make_instance(rendered_version, paper_account, market)
    reconcile()
    watch.watch_touch(inst.pk, 15, watcher="browser-1")
    layer, channel = _subscribe(inst)
    instance_pause(instance=inst, reason="USER", actor=user)
    slot = int(time.time()) + 1
    with django_capture_on_commit_callbacks(execute=True):
        assert [o.status for o in tick_run_batch([(str(inst.pk), slot)])] == ["paused"]
    assert not [m for m in async_to_sync(_drain)(layer, channel) if m["kind"] == "widgets"]
    assert _state(inst) == {"n": 0, "renders": 0}


def test_render_rate_limit_per_instance_is_shared_by_ticks(rendered_version, paper_account, market, quote):
    inst = make_instance(rendered_version, paper_account, market)
    reconcile()
    watch.watch_touch(inst.pk, 15, watcher="browser-1")
    _tick_all([inst], 3)  # back to back, well inside ENGINE_RENDER_MIN_INTERVAL (0.25 s)
    assert _state(inst)["renders"] == 1  # one render granted; the others were rate limited


# --- the API ---------------------------------------------------------------------------------------


@pytest.fixture
def running(rendered_version, paper_account, market, quote):
    inst = make_instance(rendered_version, paper_account, market)
    reconcile()
    _tick_all([inst], 2)  # unwatched: ticks, no render
    return inst


def _values(body):
    return {w["label"]: w["value"] for w in body["widgets"]}


def test_api_renders_from_the_persisted_state_and_is_rate_limited(api_client, running, settings):
    settings.ENGINE_RENDER_MIN_INTERVAL = 0.3
    res = api_client.get(f"/api/v1/instances/{running.pk}/render/")
    assert res.status_code == 200, res.content
    body = res.json()
    assert body["cached"] is False and _values(body) == {"renders": 1, "ticks": 2}
    again = api_client.get(f"/api/v1/instances/{running.pk}/render/").json()
    assert again["cached"] is True and again["widgets"] == body["widgets"]  # render() not called
    assert again["rendered_at"] == body["rendered_at"]
    time.sleep(0.35)
    third = api_client.get(f"/api/v1/instances/{running.pk}/render/").json()
    assert third["cached"] is False and _values(third) == {"renders": 2, "ticks": 2}
    # the API render is for the caller only: it does not count as watching
    assert not watch.instance_is_watched(running.pk)


def test_viewers_may_render(viewer_client, running):
    res = viewer_client.get(f"/api/v1/instances/{running.pk}/render/")
    assert res.status_code == 200 and _values(res.json())["ticks"] == 2


def test_another_tenants_instance_is_a_404_and_nothing_rendered(other_api_client, running):
    res = other_api_client.get(f"/api/v1/instances/{running.pk}/render/")
    assert res.status_code == 404
    assert "renders" not in str(res.content)
    assert runtime.r().get(rendering.CACHE_KEY.format(running.pk)) is None
    assert other_api_client.get("/api/v1/instances/not-a-uuid/render/").status_code == 404


def test_paused_or_off_instances_are_not_rendered_by_the_api(api_client, running, user):
    instance_pause(instance=running, reason="USER", actor=user)
    res = api_client.get(f"/api/v1/instances/{running.pk}/render/")
    assert res.status_code == 409
    assert res.json()["errors"][0]["code"] == "PAUSED"
    assert runtime.r().get(rendering.CACHE_KEY.format(running.pk)) is None
    running.mode = "off"
    running.save(update_fields=["mode"])
    res = api_client.get(f"/api/v1/instances/{running.pk}/render/")
    assert res.status_code == 409 and res.json()["errors"][0]["code"] == "INSTANCE_OFF"


def test_a_failing_render_is_a_409_with_the_sandbox_code(api_client, tenant, paper_account, market, quote):
    version = make_version(tenant, RENDER_COUNTER.replace('self.state["renders"] += 1', "1 / 0"))
    inst = make_instance(version, paper_account, market)
    reconcile()
    res = api_client.get(f"/api/v1/instances/{inst.pk}/render/")
    assert res.status_code == 409
    assert res.json()["errors"][0]["code"] == "RUNTIME_ERROR"
    assert "ZeroDivisionError" in res.json()["errors"][0]["detail"]
