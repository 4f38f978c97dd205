"""A loopback Binance spot venue (REST api/v3), the exchange ccxt's `binance` class is pointed at.

Shapes follow Binance's published spot API reference and what ccxt's binance implementation reads
(`exchangeInfo` filters PRICE_FILTER / LOT_SIZE / NOTIONAL, order fields `orderId`,
`clientOrderId`, `origQty`, `executedQty`, `cummulativeQuoteQty`, `status`; account `balances`).

Auth: signed endpoints need the `X-MBX-APIKEY` header and a `signature` parameter, the hex
HMAC-SHA256 of the query string (GET/DELETE) or form body (POST) without it, under the key's
secret, plus a `timestamp` within `recvWindow`. Errors are Binance's `{"code": -NNNN, "msg": ...}`:
duplicate client order id -2010 "Duplicate order sent.", insufficient balance -2010 "Account has
insufficient balance for requested action.", unknown order -2013 "Order does not exist.", bad
lot/price -1013 "Filter failure: ...", bad signature -1022, rate limit 429 -1003 with Retry-After.

User data (an account's order events as `executionReport`), both ways Binance offers it:
- the WebSocket API `/ws-api/v3`, method `userDataStream.subscribe.signature` (params `apiKey`,
  `timestamp`, `signature` = HMAC of the sorted params), then `{"subscriptionId", "event": {...}}`
  frames: what ccxt pro's `watch_orders` uses for spot;
- the listenKey: `POST /api/v3/userDataStream` (API key header) returns one, `PUT` keeps it alive,
  `DELETE` closes it, and `/ws/<listenKey>` streams the raw events.
A stream sends what happens while it is connected; `drop_websocket` closes them all.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from venuesim.common import ErrorBodies, dec, guard, json_response
from venuesim.engine import Account, Instrument, Order, UserEvent, Venue, VenueRejection

ERRORS = ErrorBodies(
    rate_limited=lambda retry_after: (
        429,
        {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
        },
    ),
    server_error=lambda: (
        500,
        {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
    ),
)
_REJECTIONS = {
    "duplicate_client_order_id": (400, -2010, "Duplicate order sent."),
    "insufficient_funds": (400, -2010, "Account has insufficient balance for requested action."),
    "not_found": (400, -2013, "Order does not exist."),
    "not_cancelable": (400, -2011, "Unknown order sent."),
    "unknown_symbol": (400, -1121, "Invalid symbol."),
    "bad_quantity": (400, -1013, "Filter failure: LOT_SIZE"),
    "bad_price": (400, -1013, "Filter failure: PRICE_FILTER"),
}
_STATUS = {
    "new": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
    "rejected": "REJECTED",
}
_EXECUTION = {
    "new": "NEW",
    "partial_fill": "TRADE",
    "fill": "TRADE",
    "canceled": "CANCELED",
    "rejected": "REJECTED",
    "expired": "EXPIRED",
}
_INTERVALS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400}


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"code": code, "msg": msg}, headers)


def _rejection(exc: VenueRejection) -> Response:
    status, code, msg = _REJECTIONS.get(exc.kind, (400, -1100, str(exc)))
    return _error(status, code, msg)


def order_body(order: Order, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": order.symbol,
        "orderId": order.seq,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": dec(order.limit_price or Decimal(0)),
        "origQty": dec(order.qty),
        "executedQty": dec(order.filled_qty),
        "cummulativeQuoteQty": dec(order.filled_notional),
        "status": _STATUS[order.status],
        "timeInForce": order.tif.upper(),
        "type": order.type.upper(),
        "side": order.side.upper(),
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": int(order.created * 1000),
        "updateTime": int(order.updated * 1000),
        "isWorking": order.status in ("new", "partially_filled"),
        "workingTime": int(order.created * 1000),
        "origQuoteOrderQty": "0.00000000",
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if full:
        body["transactTime"] = int(order.updated * 1000)
        body["fills"] = [
            {
                "price": dec(f.price),
                "qty": dec(f.qty),
                "commission": "0",
                "commissionAsset": "BNB",
                "tradeId": i + 1,
            }
            for i, f in enumerate(order.fills)
        ]
    return body


def execution_report(event: UserEvent) -> dict[str, Any]:
    """An order event as Binance's `executionReport` (cumulative `z` / `Z`, last fill `l` / `L`)."""
    order, fill = event.order, event.fill
    ms = int(order.updated * 1000)
    cancel = event.kind == "canceled"
    return {
        "e": "executionReport",
        "E": ms,
        "s": order.symbol,
        # A cancel's own client id is `c`; the order's is then `C` (as Binance reports it).
        "c": f"cancel-{event.seq}" if cancel else order.client_order_id,
        "S": order.side.upper(),
        "o": order.type.upper(),
        "f": order.tif.upper(),
        "q": dec(order.qty),
        "p": dec(order.limit_price or Decimal(0)),
        "P": "0.00000000",
        "F": "0.00000000",
        "g": -1,
        "C": order.client_order_id if cancel else "",
        "x": _EXECUTION[event.kind],
        "X": _STATUS[order.status],
        "r": "NONE",
        "i": order.seq,
        "l": dec(fill.qty) if fill else "0",
        "z": dec(order.filled_qty),
        "L": dec(fill.price) if fill else "0",
        "n": "0",
        "N": None,
        "T": int((fill.ts if fill else order.updated) * 1000),
        "t": event.seq if fill else -1,
        "I": event.seq,
        "w": order.status in ("new", "partially_filled"),
        "m": False,
        "M": fill is not None,
        "O": int(order.created * 1000),
        "Z": dec(order.filled_notional),
        "Y": dec(fill.qty * fill.price) if fill else "0",
        "Q": "0.00000000",
        "W": int(order.created * 1000),
        "V": "EXPIRE_MAKER",
    }


def symbol_body(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "status": "TRADING" if inst.status == "active" else "BREAK",
        "baseAsset": inst.base,
        "baseAssetPrecision": 8,
        "quoteAsset": inst.quote_ccy,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": dec(inst.tick),
                "maxPrice": "1000000.00000000",
                "tickSize": dec(inst.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": dec(inst.min_qty),
                "maxQty": "9000.00000000",
                "stepSize": dec(inst.lot),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _kline_rows(inst: Instrument, start_ms: int, end_ms: int, interval: int, limit: int) -> list[list[Any]]:
    mid = (inst.bid + inst.ask) / 2
    rows = []
    ts = math.ceil(start_ms / 1000 / interval) * interval
    while ts * 1000 <= end_ms and len(rows) < limit:
        wobble = Decimal(str(round(math.sin(ts / 3600.0) * 0.01, 6)))
        close = (mid * (1 + wobble) / inst.tick).to_integral_value() * inst.tick
        open_ = (mid * (1 + wobble / 2) / inst.tick).to_integral_value() * inst.tick
        rows.append(
            [
                ts * 1000,
                dec(open_),
                dec(max(open_, close) + inst.tick),
                dec(min(open_, close) - inst.tick),
                dec(close),
                "12.5",
                ts * 1000 + interval * 1000 - 1,
                dec(close * Decimal("12.5")),
                40,
                "6",
                dec(close * 6),
                "0",
            ]
        )
        ts += interval
    return rows


def create_app(venue: Venue) -> Starlette:
    async def signed_params(request: Request) -> tuple[Account | None, dict[str, str], Response | None]:
        account = venue.accounts.get(request.headers.get("X-MBX-APIKEY", ""))
        if account is None:
            return None, {}, _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload = (
            request.url.query if request.method in ("GET", "DELETE") else (await request.body()).decode()
        )
        base, sep, signature = payload.rpartition("&signature=")
        expected = hmac.new(account.secret.encode(), base.encode(), hashlib.sha256).hexdigest()
        if not sep or not hmac.compare_digest(signature, expected):
            return None, {}, _error(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(base))
        try:
            stamp, window = int(params.get("timestamp", "0")), int(params.get("recvWindow", "5000"))
        except ValueError:
            return None, {}, _error(400, -1100, "Illegal characters found in parameter 'timestamp'.")
        if abs(time.time() * 1000 - stamp) > window:
            return None, {}, _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return account, params, None

    def private(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            account, params, error = await signed_params(request)
            if error is not None or account is None:
                return error or _error(400, -1022, "Signature for this request is not valid.")
            return await guard(venue, request, account, ERRORS, lambda: handler(request, account, params))

        return wrapped

    def public(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            anonymous = Account(
                api_key=f"ip:{request.client.host if request.client else '?'}", secret="", cash=Decimal(0)
            )
            return await guard(venue, request, anonymous, ERRORS, lambda: handler(request))

        return wrapped

    async def ping(request: Request) -> Response:
        return json_response(200, {})

    async def server_time(request: Request) -> Response:
        return json_response(200, {"serverTime": int(time.time() * 1000)})

    async def exchange_info(request: Request) -> Response:
        symbols = [symbol_body(i) for i in venue.instruments.values()]
        return json_response(
            200,
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            },
        )

    def _instrument(request: Request) -> Instrument | None:
        return venue.instruments.get(request.query_params.get("symbol", ""))

    async def book_ticker(request: Request) -> Response:
        if "symbol" in request.query_params:
            inst = _instrument(request)
            if inst is None:
                return _error(400, -1121, "Invalid symbol.")
            return json_response(200, _book(inst))
        return json_response(200, [_book(i) for i in venue.instruments.values()])

    async def ticker_24hr(request: Request) -> Response:
        inst = _instrument(request)
        if inst is None:
            return _error(400, -1121, "Invalid symbol.")
        now = int(time.time() * 1000)
        mid = (inst.bid + inst.ask) / 2
        body = {
            **_book(inst),
            "priceChange": "0",
            "priceChangePercent": "0",
            "weightedAvgPrice": dec(mid),
            "prevClosePrice": dec(mid),
            "lastPrice": dec(inst.bid),
            "lastQty": "1",
            "openPrice": dec(mid),
            "highPrice": dec(inst.ask),
            "lowPrice": dec(inst.bid),
            "volume": "1000",
            "quoteVolume": dec(mid * 1000),
            "openTime": now - 86400000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 1000,
            "count": 1000,
        }
        return json_response(200, body)

    async def klines(request: Request) -> Response:
        inst = _instrument(request)
        if inst is None:
            return _error(400, -1121, "Invalid symbol.")
        interval = _INTERVALS.get(request.query_params.get("interval", ""))
        if interval is None:
            return _error(400, -1120, "Invalid interval.")
        now_ms = int(time.time() * 1000)
        limit = min(int(request.query_params.get("limit") or 500), 1000)
        end = int(request.query_params.get("endTime") or now_ms)
        start = int(request.query_params.get("startTime") or end - limit * interval * 1000)
        return json_response(200, _kline_rows(inst, start, min(end, now_ms), interval, limit))

    async def new_order(request: Request, account: Account, params: dict[str, str]) -> Response:
        side, type_ = params.get("side", "").lower(), params.get("type", "").lower()
        if side not in ("buy", "sell"):
            return _error(
                400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."
            )
        if type_ not in ("market", "limit"):
            return _error(400, -1116, "Invalid orderType.")
        try:
            qty = Decimal(params.get("quantity", ""))
            price = Decimal(params["price"]) if "price" in params else None
        except InvalidOperation:
            return _error(
                400,
                -1100,
                "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            )
        if type_ == "limit" and (price is None or "timeInForce" not in params):
            return _error(
                400, -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
            )
        client_id = params.get("newClientOrderId") or f"sim{time.time_ns()}"
        if len(client_id) > 36:
            return _error(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
            )
        try:
            order = venue.place(
                account,
                client_order_id=client_id,
                symbol=params.get("symbol", ""),
                side=side,
                type=type_,
                qty=qty,
                limit_price=price,
                tif=params.get("timeInForce", "GTC").lower(),
            )
        except VenueRejection as exc:
            return _rejection(exc)
        return json_response(200, order_body(order, full=params.get("newOrderRespType") != "ACK"))

    def _find(account: Account, params: dict[str, str]) -> Order | None:
        if "origClientOrderId" in params:
            order = venue.get_by_client_id(account, params["origClientOrderId"])
        else:
            order = next(
                (
                    o
                    for o in venue.list_orders(account, open_only=False)
                    if str(o.seq) == params.get("orderId")
                ),
                None,
            )
        return order if order is not None and order.symbol == params.get("symbol") else None

    async def query_order(request: Request, account: Account, params: dict[str, str]) -> Response:
        order = _find(account, params)
        return (
            _rejection(VenueRejection("not_found"))
            if order is None
            else json_response(200, order_body(order))
        )

    async def cancel_order(request: Request, account: Account, params: dict[str, str]) -> Response:
        order = _find(account, params)
        if order is None:
            return _rejection(VenueRejection("not_cancelable"))
        try:
            venue.cancel(account, order)
        except VenueRejection as exc:
            return _rejection(exc)
        body = order_body(order)
        body["origClientOrderId"] = order.client_order_id
        return json_response(200, body)

    async def open_orders(request: Request, account: Account, params: dict[str, str]) -> Response:
        symbol = params.get("symbol")
        orders = [o for o in venue.list_orders(account, open_only=True) if symbol in (None, o.symbol)]
        return json_response(200, [order_body(o) for o in orders])

    async def account_info(request: Request, account: Account, params: dict[str, str]) -> Response:
        with venue.lock:
            assets: dict[str, tuple[Decimal, Decimal]] = {account.currency: (account.cash, Decimal(0))}
            for symbol, (qty, _avg) in account.positions.items():
                assets[venue.instruments[symbol].base] = (qty, Decimal(0))
            for order in venue.list_orders(account, open_only=True):  # what open orders hold is "locked"
                inst = venue.instruments[order.symbol]
                if order.side == "buy":
                    held = order.remaining * (order.limit_price or inst.ask)
                    free, locked = assets[account.currency]
                    assets[account.currency] = (free - held, locked + held)
                else:
                    free, locked = assets.get(inst.base, (Decimal(0), Decimal(0)))
                    assets[inst.base] = (free - order.remaining, locked + order.remaining)
        body = {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0", "seller": "0"},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": int(time.time() * 1000),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": dec(f), "locked": dec(lk)} for a, (f, lk) in sorted(assets.items())
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }
        return json_response(200, body)

    listen_keys: dict[str, str] = {}  # listenKey -> API key

    async def user_data_stream(request: Request) -> Response:
        account = venue.accounts.get(request.headers.get("X-MBX-APIKEY", ""))
        if account is None:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")

        async def handle() -> Response:
            if request.method == "POST":
                key = hashlib.sha256(f"{account.api_key}:{time.time_ns()}".encode()).hexdigest()
                listen_keys[key] = account.api_key
                return json_response(200, {"listenKey": key})
            form = dict(parse_qsl(request.url.query or (await request.body()).decode()))
            key = form.get("listenKey", "")
            if listen_keys.get(key) != account.api_key:
                return _error(400, -1125, "This listenKey does not exist.")
            if request.method == "DELETE":
                listen_keys.pop(key, None)
            return json_response(200, {})

        return await guard(venue, request, account, ERRORS, handle)

    async def market_stream(websocket: WebSocket) -> None:
        api_key = listen_keys.get(websocket.path_params.get("stream", ""))
        if api_key is not None:
            await _serve_listen_key_stream(venue, websocket, api_key)
        else:
            await _serve_market_stream(venue, websocket)

    async def ws_api(websocket: WebSocket) -> None:
        await _serve_ws_api(venue, websocket)

    routes = [
        Route("/api/v3/ping", public(ping)),
        Route("/api/v3/time", public(server_time)),
        Route("/api/v3/exchangeInfo", public(exchange_info)),
        Route("/api/v3/ticker/bookTicker", public(book_ticker)),
        Route("/api/v3/ticker/24hr", public(ticker_24hr)),
        Route("/api/v3/klines", public(klines)),
        Route("/api/v3/order", private(new_order), methods=["POST"]),
        Route("/api/v3/order", private(query_order), methods=["GET"]),
        Route("/api/v3/order", private(cancel_order), methods=["DELETE"]),
        Route("/api/v3/openOrders", private(open_orders)),
        Route("/api/v3/account", private(account_info)),
        Route("/api/v3/userDataStream", user_data_stream, methods=["POST", "PUT", "DELETE"]),
        WebSocketRoute("/ws-api/v3", ws_api),
        WebSocketRoute("/ws/{stream}", market_stream),
        WebSocketRoute("/ws", market_stream),
    ]
    return Starlette(routes=routes)


def _book(inst: Instrument) -> dict[str, Any]:
    return {
        "symbol": inst.symbol,
        "bidPrice": dec(inst.bid),
        "bidQty": dec(inst.depth),
        "askPrice": dec(inst.ask),
        "askQty": dec(inst.depth),
    }


async def _serve_market_stream(venue: Venue, websocket: WebSocket) -> None:
    """Binance's raw market streams: SUBSCRIBE / UNSUBSCRIBE `<symbol>@bookTicker`, then a frame per change."""
    await websocket.accept()
    generation = venue.websocket_generation
    subscribed: set[str] = set()
    seen: dict[str, int] = {}
    pending: asyncio.Task[str] | None = None
    try:
        while True:
            if venue.websocket_generation != generation:  # an injected drop
                if pending is not None:
                    pending.cancel()
                await websocket.close(code=1011)
                return
            if pending is None:
                pending = asyncio.ensure_future(websocket.receive_text())
            done, _ = await asyncio.wait({pending}, timeout=0.05)
            if pending in done:
                raw, pending = pending.result(), None
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await websocket.send_text(
                        json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
                    )
                    continue
                streams = [
                    s for s in msg.get("params") or [] if isinstance(s, str) and s.endswith("@bookTicker")
                ]
                symbols = {s.split("@")[0].upper() for s in streams}
                if msg.get("method") == "SUBSCRIBE":
                    subscribed |= symbols
                elif msg.get("method") == "UNSUBSCRIBE":
                    subscribed -= symbols
                await websocket.send_text(json.dumps({"result": None, "id": msg.get("id")}))
            for symbol in sorted(subscribed):
                inst = venue.instruments.get(symbol)
                if inst is None or seen.get(symbol) == inst.quote_seq:
                    continue
                seen[symbol] = inst.quote_seq
                frame = {
                    "u": inst.quote_seq,
                    "s": symbol,
                    "b": dec(inst.bid),
                    "B": dec(inst.depth),
                    "a": dec(inst.ask),
                    "A": dec(inst.depth),
                }
                await websocket.send_text(json.dumps(frame))
    except (WebSocketDisconnect, RuntimeError):
        return


async def _serve_listen_key_stream(venue: Venue, websocket: WebSocket, api_key: str) -> None:
    """`/ws/<listenKey>`: the account's raw executionReport events while connected."""
    await websocket.accept()
    generation, last_seq = venue.websocket_generation, venue.last_event_seq()
    pending = asyncio.ensure_future(websocket.receive_text())
    try:
        while True:
            if venue.websocket_generation != generation or pending.done():
                pending.cancel()
                await websocket.close(code=1011)
                return
            for event in venue.events_after(api_key, last_seq):
                last_seq = event.seq
                if not event.hidden:
                    await websocket.send_text(json.dumps(execution_report(event)))
            await asyncio.sleep(0.05)
    except (WebSocketDisconnect, RuntimeError):
        pending.cancel()
        return


async def _serve_ws_api(venue: Venue, websocket: WebSocket) -> None:
    """Binance's WebSocket API, the user data stream methods: subscribe by signature, then events."""
    await websocket.accept()
    generation = venue.websocket_generation
    subscribed: dict[int, Account] = {}
    last_seq = venue.last_event_seq()
    pending: asyncio.Task[str] | None = None

    def answer(request_id: Any, status: int, **body: Any) -> str:
        return json.dumps({"id": request_id, "status": status, **body, "rateLimits": []})

    try:
        while True:
            if venue.websocket_generation != generation:  # an injected drop
                if pending is not None:
                    pending.cancel()
                await websocket.close(code=1011)
                return
            if pending is None:
                pending = asyncio.ensure_future(websocket.receive_text())
            done, _ = await asyncio.wait({pending}, timeout=0.05)
            if pending in done:
                raw, pending = pending.result(), None
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await websocket.send_text(
                        answer(None, 400, error={"code": -1000, "msg": "Malformed JSON."})
                    )
                    continue
                request_id, method = msg.get("id"), msg.get("method")
                params = dict(msg.get("params") or {})
                if method == "userDataStream.subscribe.signature":
                    account, error = _ws_signed(venue, params)
                    if account is None:
                        await websocket.send_text(answer(request_id, 400, error=error))
                        continue
                    subscription = len(subscribed)
                    subscribed[subscription] = account
                    await websocket.send_text(
                        answer(request_id, 200, result={"subscriptionId": subscription})
                    )
                elif method == "userDataStream.unsubscribe":
                    subscribed.clear()
                    await websocket.send_text(answer(request_id, 200, result={}))
                else:
                    await websocket.send_text(
                        answer(request_id, 400, error={"code": -1100, "msg": f"Unknown method {method}."})
                    )
            upto = venue.last_event_seq()
            if venue.websocket_generation != generation:
                continue  # dropped meanwhile: what happened since is not this socket's to send
            for subscription, account in subscribed.items():
                for event in venue.events_after(account.api_key, last_seq):
                    if event.seq <= upto and not event.hidden:
                        frame = {"subscriptionId": subscription, "event": execution_report(event)}
                        await websocket.send_text(json.dumps(frame))
            last_seq = upto
    except (WebSocketDisconnect, RuntimeError):
        return


def _ws_signed(venue: Venue, params: dict[str, Any]) -> tuple[Account | None, dict[str, Any]]:
    """A WebSocket API request's signature: HMAC-SHA256 of its sorted `k=v&...` params (without it)."""
    account = venue.accounts.get(str(params.get("apiKey", "")))
    if account is None:
        return None, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    signature = str(params.pop("signature", ""))
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    expected = hmac.new(account.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        return None, {"code": -1022, "msg": "Signature for this request is not valid."}
    stamp, window = int(params.get("timestamp") or 0), int(params.get("recvWindow") or 5000)
    if abs(time.time() * 1000 - stamp) > window:
        return None, {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    return account, {}
