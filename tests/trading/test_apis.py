"""Trading API: accounts (list/create/detail), orders, fills, positions — tenant-scoped, with other-tenant cases."""

from __future__ import annotations

from decimal import Decimal as D

from stratbox.trading.models import Account
from tenants.models import AuditEvent
from tests.trading.conftest import Intents, make_instance, make_quote, place


def test_create_and_list_paper_accounts(api_client, tenant, other_paper_account):
    r = api_client.post(
        "/api/v1/accounts/", {"name": "Alpha", "starting_balance": "2500.00", "fee_bps": "7.5"}, format="json"
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["kind"] == "paper" and D(body["balance"]) == D("2500") and D(body["fee_bps"]) == D("7.5")
    account = Account.objects.get(pk=body["id"])
    assert account.tenant == tenant and account.balance == D("2500")
    assert AuditEvent.objects.filter(action="account.create", target_id=str(account.pk)).exists()
    names = [a["name"] for a in api_client.get("/api/v1/accounts/").json()["results"]]
    assert names == ["Alpha"]  # the other tenant's account never shows


def test_create_account_rejects_bad_input_naming_the_field(api_client, paper_account):
    r = api_client.post("/api/v1/accounts/", {"name": "Paper", "starting_balance": "10"}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "name"
    r = api_client.post("/api/v1/accounts/", {"name": "X", "starting_balance": "-1"}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "starting_balance"
    r = api_client.post(
        "/api/v1/accounts/", {"name": "Y", "starting_balance": "10", "kind": "live"}, format="json"
    )
    assert r.status_code == 201 and r.json()["kind"] == "paper"  # kind is not client-settable
    assert Account.objects.filter(name="X").count() == 0


def test_paper_partial_fills_are_opt_in_per_account(api_client, tenant):
    whole = api_client.post("/api/v1/accounts/", {"name": "Whole", "starting_balance": "10"}, format="json")
    assert whole.status_code == 201 and whole.json()["max_volume_fraction"] is None  # the default
    r = api_client.post(
        "/api/v1/accounts/",
        {"name": "Partial", "starting_balance": "10", "max_volume_fraction": "0.25"},
        format="json",
    )
    assert r.status_code == 201 and D(r.json()["max_volume_fraction"]) == D("0.25")
    assert Account.objects.get(pk=r.json()["id"]).max_volume_fraction == D("0.25")
    for bad in ("0", "1.5"):
        r = api_client.post(
            "/api/v1/accounts/",
            {"name": f"Bad {bad}", "starting_balance": "10", "max_volume_fraction": bad},
            format="json",
        )
        assert r.status_code == 400 and r.json()["errors"][0]["attr"] == "max_volume_fraction"


def test_viewer_cannot_create_accounts(viewer_client):
    r = viewer_client.post("/api/v1/accounts/", {"name": "V", "starting_balance": "10"}, format="json")
    assert r.status_code == 403 and not Account.objects.filter(name="V").exists()


def test_account_detail_and_other_tenant_404(
    api_client, other_api_client, paper_account, other_paper_account
):
    assert api_client.get(f"/api/v1/accounts/{paper_account.pk}/").json()["name"] == "Paper"
    assert api_client.get(f"/api/v1/accounts/{other_paper_account.pk}/").status_code == 404
    assert api_client.get("/api/v1/accounts/not-a-uuid/").status_code == 404
    assert other_api_client.get(f"/api/v1/accounts/{paper_account.pk}/").status_code == 404


def _trade(tenant, account, market):
    inst = make_instance(tenant, account, market)
    i = Intents(inst)
    place(inst, i("buy", 2.0), make_quote(market, 100))
    place(inst, i("sell", 5.0), make_quote(market, 100))  # rejected
    return inst


def test_orders_fills_positions_with_filters_and_other_tenant(
    api_client, other_api_client, tenant, other_tenant, paper_account, other_paper_account, market
):
    from stratbox.markets.quotes import quote_set

    inst = _trade(tenant, paper_account, market)
    other = _trade(other_tenant, other_paper_account, market)
    observe = make_instance(tenant, paper_account, market, mode="observe")
    place(observe, Intents(observe)("buy", 1.0), make_quote(market, 100), mode="observe")
    quote_set(market.pk, make_quote(market, 110))

    orders = api_client.get("/api/v1/orders/").json()["results"]
    assert len(orders) == 3 and {o["instance"] for o in orders} == {str(inst.pk), str(observe.pk)}
    assert [o["side"] for o in api_client.get("/api/v1/orders/", {"status": "filled"}).json()["results"]] == [
        "buy"
    ]
    assert len(api_client.get("/api/v1/orders/", {"is_shadow": "true"}).json()["results"]) == 1
    assert len(api_client.get("/api/v1/orders/", {"side": "sell"}).json()["results"]) == 1
    assert len(api_client.get("/api/v1/orders/", {"instance": str(inst.pk)}).json()["results"]) == 2
    assert api_client.get("/api/v1/orders/", {"instance": str(other.pk)}).json()["results"] == []
    assert api_client.get("/api/v1/orders/", {"instance": "nope"}).status_code == 400
    other_order = other.orders.first()
    assert api_client.get(f"/api/v1/orders/{other_order.pk}/").status_code == 404
    assert other_api_client.get(f"/api/v1/orders/{orders[0]['id']}/").status_code == 404

    fills = api_client.get("/api/v1/fills/", {"is_shadow": "false"}).json()["results"]
    assert len(fills) == 1 and D(fills[0]["price"]) == D("100")
    assert api_client.get("/api/v1/fills/", {"instance": str(other.pk)}).json()["results"] == []

    positions = api_client.get("/api/v1/positions/", {"status": "open", "is_shadow": "false"}).json()[
        "results"
    ]
    assert len(positions) == 1 and positions[0]["instance"] == str(inst.pk)
    assert D(positions[0]["unrealized_pnl"]) == D("20")
    assert api_client.get("/api/v1/positions/", {"status": "closed"}).json()["results"] == []
    assert {p["instance"] for p in other_api_client.get("/api/v1/positions/").json()["results"]} == {
        str(other.pk)
    }


def test_reads_need_authentication(client, paper_account):
    assert client.get("/api/v1/orders/").status_code in (401, 403)
