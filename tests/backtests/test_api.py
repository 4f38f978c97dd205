"""Backtests REST API without a worker: validation (400 naming the field), tenancy (404), viewers (403),
CSV rows named by line, list/detail/trades/equity/compare shapes. Runs are not executed here
(nothing is committed, so nothing is enqueued); the worker suites run them."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal as D

import pytest

from stratbox.backtests.datasets import dataset_bars_chunks
from stratbox.backtests.models import Backtest, BacktestTrade
from tests.backtests.conftest import REFERENCE_CSV, START, store_bars

pytestmark = pytest.mark.django_db

URL = "/api/v1/backtests/"


def _attrs(resp) -> set[str]:
    return {e["attr"] for e in resp.json()["errors"]}


def _bars_payload(version, market, **extra):
    return {
        "version": str(version.pk),
        "config": {"fast": 3, "slow": 5},
        "market": market.code,
        "start": START.isoformat(),
        "end": (START + timedelta(hours=1)).isoformat(),
        **extra,
    }


def test_create_from_stored_bars_snapshots_provenance(api_client, sma_version, market, tenant, user) -> None:
    store_bars(market, [100.0 + i % 7 for i in range(120)])
    resp = api_client.post(URL, _bars_payload(sma_version, market, starting_capital="2500"), format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "queued" and body["source"] == "bars"
    assert body["progress"] == {
        "done": 0,
        "total": 60,
        "percent": 0.0,
        "bars_per_s": None,
        "eta_s": None,
        "cancel_requested": False,
        "queue_position": 1,
    }
    bt = Backtest.objects.get(pk=body["id"])
    assert bt.tenant == tenant and bt.created_by == user
    assert bt.version_sha256 == sma_version.sha256
    assert bt.config == {"fast": 3, "slow": 5, "qty": 10.0}  # defaults applied into the snapshot
    assert bt.broker_params["starting_balance"] == 2500.0
    assert {"slippage_bps", "fee_bps"} <= set(bt.broker_params)
    from tenants.models import AuditEvent

    assert AuditEvent.objects.filter(tenant=tenant, action="backtest.create", target_id=str(bt.pk)).exists()


def test_reuse_instance_config(api_client, sma_version, market, tenant, paper_account) -> None:
    from stratbox.instances.models import StrategyInstance

    store_bars(market, [100.0 + i % 5 for i in range(90)])
    inst = StrategyInstance.objects.create(
        tenant=tenant,
        name="live one",
        strategy=sma_version.definition,
        version=sma_version,
        account=paper_account,
        market=market,
        config={"fast": 4, "slow": 9, "qty": 2.0},
    )
    resp = api_client.post(
        URL,
        {
            "instance": str(inst.pk),
            "start": START.isoformat(),
            "end": (START + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    bt = Backtest.objects.get(pk=resp.json()["id"])
    assert bt.instance == inst and bt.version == sma_version and bt.market == market
    assert bt.config == {"fast": 4, "slow": 9, "qty": 2.0}
    assert bt.starting_capital == inst.total_capital
    assert bt.broker_params["sizing"]["capital_per_trade"] == float(inst.capital_per_trade)
    assert "max_volume_fraction" not in bt.broker_params  # the account's default: whole fills
    # an explicit config next to an instance is refused, naming the field
    resp = api_client.post(
        URL,
        {
            "instance": str(inst.pk),
            "config": {"fast": 2},
            "start": START.isoformat(),
            "end": (START + timedelta(hours=2)).isoformat(),
        },
        format="json",
    )
    assert resp.status_code == 400 and _attrs(resp) == {"config"}
    assert Backtest.objects.count() == 1
    # partial fills: the instance's paper account's cap, or the request's own
    paper_account.max_volume_fraction = D("0.2")
    paper_account.save(update_fields=["max_volume_fraction"])
    window = {"start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()}
    for extra, want in (({}, 0.2), ({"max_volume_fraction": 0.05}, 0.05)):
        resp = api_client.post(URL, {"instance": str(inst.pk), **window, **extra}, format="json")
        assert resp.status_code == 201, resp.content
        assert Backtest.objects.get(pk=resp.json()["id"]).broker_params["max_volume_fraction"] == want


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"config": {"fast": 0}}, "config.fast"),
        ({"config": {"nope": 1}}, "config.nope"),
        ({"config": "not json"}, "config"),
        ({"market": "NOPE:X"}, "market"),
        ({"end": START.isoformat()}, "end"),
        ({"starting_capital": "-5"}, "starting_capital"),
        ({"fee_bps": -1}, "fee_bps"),
        ({"version": "00000000-0000-0000-0000-000000000000"}, "version"),
        ({"interval_seconds": 0}, "interval_seconds"),
        (
            {
                "start": (START + timedelta(days=30)).isoformat(),
                "end": (START + timedelta(days=31)).isoformat(),
            },
            "start",
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api_client, sma_version, market, change, field) -> None:
    store_bars(market, [100.0, 101.0, 102.0])
    resp = api_client.post(URL, {**_bars_payload(sma_version, market), **change}, format="json")
    assert resp.status_code == 400, resp.content
    assert field in _attrs(resp)
    assert Backtest.objects.count() == 0


def test_missing_source_names_the_field(api_client, sma_version) -> None:
    resp = api_client.post(URL, {"version": str(sma_version.pk)}, format="json")
    assert resp.status_code == 400 and _attrs(resp) == {"market"}
    resp = api_client.post(URL, {"config": {}}, format="json")
    assert resp.status_code == 400 and _attrs(resp) == {"version"}
    assert Backtest.objects.count() == 0


def test_bad_csv_rows_are_each_named_with_line_and_reason(api_client, sma_version) -> None:
    text = (
        "ts,open,high,low,close,volume\n"
        "1700000000,10,11,9,10,1\n"
        "1700000060,10,11,9,oops,1\n"
        "1700000120,10,9,8,10,1\n"
        "1700000180,10,11,9,10\n"
    )
    upload = io.BytesIO(text.encode())
    upload.name = "bad.csv"
    resp = api_client.post(URL, {"version": str(sma_version.pk), "csv": upload}, format="multipart")
    assert resp.status_code == 400
    errors = resp.json()["errors"]
    assert {e["attr"] for e in errors} == {"csv"}
    details = [e["detail"] for e in errors]
    assert details[0].startswith("line 3:") and "close" in details[0]
    assert details[1].startswith("line 4:") and "high" in details[1]
    assert details[2].startswith("line 5:") and "columns" in details[2]
    assert Backtest.objects.count() == 0


def test_csv_upload_is_stored_with_the_backtest(api_client, sma_version) -> None:
    with REFERENCE_CSV.open("rb") as fh:
        resp = api_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart")
    assert resp.status_code == 201, resp.content
    bt = Backtest.objects.get(pk=resp.json()["id"])
    assert bt.source == "csv" and bt.bars_total == 30 and bt.csv_filename == "sma_reference.csv"
    assert bt.dataset is not None and bt.dataset.rows == 30 and bt.dataset.tenant_id == bt.tenant_id
    assert resp.json()["dataset"] == str(bt.dataset_id)
    (first,) = list(dataset_bars_chunks(dataset_id=bt.dataset_id, chunk=3))[:1]
    assert first.close.tolist() == [100.0, 99.0, 98.0]


def test_viewer_reads_but_cannot_create_or_cancel(viewer_client, api_client, sma_version) -> None:
    with REFERENCE_CSV.open("rb") as fh:
        created = api_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart").json()
    with REFERENCE_CSV.open("rb") as fh:
        resp = viewer_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart")
    assert resp.status_code == 403
    assert viewer_client.post(f"{URL}{created['id']}/cancel/").status_code == 403
    assert Backtest.objects.get(pk=created["id"]).status == "queued"
    assert Backtest.objects.count() == 1
    assert viewer_client.get(f"{URL}{created['id']}/").status_code == 200
    assert viewer_client.get(URL).json()["count"] == 1


def test_other_tenant_gets_404_and_sees_nothing(
    api_client, other_api_client, sma_version, other_sma_version
) -> None:
    with REFERENCE_CSV.open("rb") as fh:
        mine = api_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart").json()
    for path in ("", "trades/", "equity/"):
        assert other_api_client.get(f"{URL}{mine['id']}/{path}").status_code == 404
    assert other_api_client.post(f"{URL}{mine['id']}/cancel/").status_code == 404
    assert Backtest.objects.get(pk=mine["id"]).cancel_requested_at is None
    assert other_api_client.get(URL).json()["count"] == 0
    with REFERENCE_CSV.open("rb") as fh:
        theirs = other_api_client.post(
            URL, {"version": str(other_sma_version.pk), "csv": fh}, format="multipart"
        ).json()
    assert other_api_client.get(f"{URL}compare/?a={theirs['id']}&b={mine['id']}").status_code == 404
    # running someone else's private strategy version is refused (it does not exist for them)
    with REFERENCE_CSV.open("rb") as fh:
        resp = other_api_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart")
    assert resp.status_code == 400 and _attrs(resp) == {"version"}
    assert [b["id"] for b in api_client.get(URL).json()["results"]] == [mine["id"]]
    assert Backtest.objects.count() == 2


def test_cancel_a_queued_backtest_and_not_a_finished_one(api_client, sma_version) -> None:
    with REFERENCE_CSV.open("rb") as fh:
        bt_id = api_client.post(URL, {"version": str(sma_version.pk), "csv": fh}, format="multipart").json()[
            "id"
        ]
    resp = api_client.post(f"{URL}{bt_id}/cancel/")
    assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
    resp = api_client.post(f"{URL}{bt_id}/cancel/")
    assert resp.status_code == 409 and resp.json()["errors"][0]["code"] == "BACKTEST_FINISHED"
    from stratbox.backtests.runner import backtest_run

    assert backtest_run(bt_id) == "skipped"  # a cancelled run is never claimed
    assert Backtest.objects.get(pk=bt_id).status == "cancelled"


def _finished(tenant, version, **results):
    return Backtest.objects.create(
        tenant=tenant,
        version=version,
        version_sha256=version.sha256,
        strategy_key="sma-cross",
        style="tick",
        source="csv",
        status="succeeded",
        bars_total=30,
        bars_done=30,
        **results,
    )


def test_trades_equity_and_compare(api_client, tenant, sma_version) -> None:
    a = _finished(
        tenant,
        sma_version,
        total_return=0.10,
        pnl="1000.00",
        final_equity="11000.00",
        num_trades=4,
        win_rate=0.5,
        max_drawdown=0.2,
        sharpe=1.0,
        sortino=1.5,
        exposure=0.4,
        equity_curve=[[1.0, 10000.0], [2.0, 11000.0]],
    )
    b = _finished(
        tenant,
        sma_version,
        total_return=0.25,
        pnl="2500.00",
        final_equity="12500.00",
        num_trades=6,
        win_rate=0.75,
        max_drawdown=0.1,
        sharpe=2.0,
        sortino=None,
        exposure=0.5,
    )
    BacktestTrade.objects.create(
        backtest=a,
        seq=1,
        side="long",
        qty=1,
        entry_ts=1.0,
        entry_price=10.0,
        exit_ts=2.0,
        exit_price=11.0,
        fees=0.01,
        pnl=0.99,
        reason="x",
    )
    trades = api_client.get(f"{URL}{a.pk}/trades/").json()
    assert trades["count"] == 1 and trades["results"][0]["pnl"] == 0.99
    eq = api_client.get(f"{URL}{a.pk}/equity/").json()
    assert eq["points"] == [[1.0, 10000.0], [2.0, 11000.0]]
    assert [m["kind"] for m in eq["markers"]] == ["entry", "exit"]
    cmp = api_client.get(f"{URL}compare/?a={a.pk}&b={b.pk}")
    assert cmp.status_code == 200
    body = cmp.json()
    assert body["a"]["results"]["total_return"] == 0.10 and body["b"]["results"]["num_trades"] == 6
    assert body["diff"]["total_return"] == pytest.approx(0.15)
    assert body["diff"]["num_trades"] == 2 and body["diff"]["pnl"] == 1500.0
    assert body["diff"]["sortino"] is None
    resp = api_client.get(f"{URL}compare/?a={a.pk}")
    assert resp.status_code == 400 and _attrs(resp) == {"b"}
    assert api_client.get(f"{URL}?status=succeeded").json()["count"] == 2
    resp = api_client.get(f"{URL}?status=bogus")
    assert resp.status_code == 400 and _attrs(resp) == {"status"}
