"""Markets API: shared read-only list with the latest quote; members only; no writes."""

from __future__ import annotations

from stratbox.markets.quotes import quote_set


def test_list_with_quotes_is_the_same_for_every_tenant(api_client, other_api_client, market):
    quote_set(
        market.pk, {"market": market.code, "price": 5.0, "bid": 4.9, "ask": 5.1, "volume": 1.0, "ts": 1.0}
    )
    body = api_client.get("/api/v1/markets/").json()
    assert [(m["code"], m["quote"]["price"]) for m in body["results"]] == [("SIM:BTC/USDT", 5.0)]
    assert other_api_client.get("/api/v1/markets/").json()["results"] == body["results"]
    assert api_client.get(f"/api/v1/markets/{market.pk}/").json()["code"] == "SIM:BTC/USDT"
    assert api_client.get("/api/v1/markets/999999/").status_code == 404


def test_markets_are_read_only_and_need_a_member(api_client, client, market):
    assert (
        api_client.post("/api/v1/markets/", {"venue": "X", "symbol": "Y"}, format="json").status_code == 405
    )
    assert client.get("/api/v1/markets/").status_code in (401, 403)
