"""A loopback Alpaca: the trading API (v2), the market data API (v2 stocks) and the data stream.

Shapes follow Alpaca's published API reference and what alpaca-py parses (alpaca/trading/models.py,
alpaca/data/mappings.py, alpaca/data/live/websocket.py): the same app serves `TradingClient`,
`StockHistoricalDataClient` and `StockDataStream`, each pointed at it with `url_override`.

Auth: `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` on every REST call, `{"action": "auth", ...}` as the
stream's first message. Errors are Alpaca's `{"code": <8 digits>, "message": ...}` bodies:
duplicate `client_order_id` 422 / 40010001, insufficient buying power 403 / 40310000, unknown
order 404 / 40410000, bad input 422 / 40010001, rate limit 429 / 42910000 with `Retry-After`.
The stream speaks msgpack when the client asks for it (alpaca-py does) and JSON otherwise; market
data timestamps are msgpack Timestamps, as Alpaca sends them.

`/stream` is the trading (account) stream `TradingStream` reads: `{"action": "authenticate",
"data": {"key_id", "secret_key"}}`, then `{"action": "listen", "data": {"streams":
["trade_updates"]}}`, then one `trade_updates` message per order event (new, partial_fill, fill,
canceled, rejected, expired) with the order as REST shows it. Frames are JSON in binary websocket
frames, as Alpaca sends them.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import msgpack
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from venuesim.common import ErrorBodies, dec, guard, json_response
from venuesim.engine import Account, Instrument, Order, UserEvent, Venue, VenueRejection

ERRORS = ErrorBodies(
    rate_limited=lambda retry_after: (429, {"code": 42910000, "message": "rate limit exceeded"}),
    server_error=lambda: (500, {"code": 50010000, "message": "internal server error occurred"}),
)
_REJECTIONS = {
    "duplicate_client_order_id": (422, 40010001, "client_order_id must be unique"),
    "insufficient_funds": (403, 40310000, "insufficient buying power"),
    "not_found": (404, 40410000, "order not found"),
    "not_cancelable": (422, 42210000, "order is not cancelable"),
    "unknown_symbol": (422, 40010001, "asset not found"),
}
_TIFS = {"day", "gtc", "opg", "cls", "ioc", "fok"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sim:{symbol}"))


def _error(status: int, code: int, message: str) -> Response:
    return json_response(status, {"code": code, "message": message})


def _rejection(exc: VenueRejection) -> Response:
    status, code, message = _REJECTIONS.get(exc.kind, (422, 40010001, str(exc)))
    return _error(status, code, message if exc.kind in _REJECTIONS else str(exc))


def order_body(order: Order, inst: Instrument) -> dict[str, Any]:
    filled_at = order.fills[-1].ts if order.status == "filled" else None
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": _iso(order.created),
        "updated_at": _iso(order.updated),
        "submitted_at": _iso(order.created),
        "filled_at": _iso(filled_at),
        "expired_at": None,
        "canceled_at": _iso(order.canceled),
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": _asset_id(order.symbol),
        "symbol": order.symbol,
        "asset_class": inst.asset_class,
        "notional": None,
        "qty": dec(order.qty),
        "filled_qty": dec(order.filled_qty),
        "filled_avg_price": dec(order.avg_price),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
        "time_in_force": order.tif,
        "limit_price": dec(order.limit_price),
        "stop_price": None,
        "status": order.status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
        "expires_at": None,
    }


def asset_body(inst: Instrument) -> dict[str, Any]:
    return {
        "id": _asset_id(inst.symbol),
        "class": inst.asset_class,
        "exchange": inst.exchange,
        "symbol": inst.symbol,
        "name": inst.name or inst.symbol,
        "status": "active" if inst.status == "active" else "inactive",
        "tradable": inst.status == "active",
        "marginable": False,
        "shortable": inst.shortable,
        "easy_to_borrow": inst.shortable,
        "fractionable": inst.fractionable,
        "min_order_size": dec(inst.min_qty),
        "min_trade_increment": dec(inst.lot),
        "price_increment": dec(inst.tick),
        "maintenance_margin_requirement": 100,
        "attributes": [],
    }


def _bars(inst: Instrument, start: float, end: float, interval: int) -> list[dict[str, Any]]:
    """Deterministic minute-aligned bars around the instrument's mid (a function of time only)."""
    mid = (inst.bid + inst.ask) / 2
    first = math.ceil(start / interval) * interval
    out = []
    ts = first
    while ts <= end and len(out) < 10000:
        wobble = Decimal(str(round(math.sin(ts / 3600.0) * 0.01, 6)))
        close = (mid * (1 + wobble) / inst.tick).to_integral_value() * inst.tick
        open_ = (mid * (1 + wobble / 2) / inst.tick).to_integral_value() * inst.tick
        high = max(open_, close) + inst.tick
        low = min(open_, close) - inst.tick
        out.append(
            {
                "t": _iso(ts),
                "o": open_,
                "h": high,
                "l": low,
                "c": close,
                "v": 100 + ts % 50,
                "n": 10,
                "vw": close,
            }
        )
        ts += interval
    return out


_TIMEFRAMES = {"Min": 60, "Hour": 3600, "Day": 86400}


def _parse_timeframe(raw: str) -> int | None:
    for suffix, seconds in _TIMEFRAMES.items():
        if raw.endswith(suffix) and raw[: -len(suffix)].isdigit():
            return int(raw[: -len(suffix)]) * seconds
    return None


def _parse_time(raw: str | None, default: float) -> float:
    if not raw:
        return default
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


def create_app(venue: Venue) -> Starlette:
    def account_of(request: Request) -> Account | None:
        return venue.authenticate(
            request.headers.get("APCA-API-KEY-ID"), request.headers.get("APCA-API-SECRET-KEY")
        )

    def endpoint(handler: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            account = account_of(request)
            if account is None:
                return _error(401, 40110000, "request is not authorized")
            return await guard(venue, request, account, ERRORS, lambda: handler(request, account))

        return wrapped

    async def get_account(request: Request, account: Account) -> Response:
        with venue.lock:
            value = sum(
                (qty * venue.instruments[s].bid for s, (qty, _) in account.positions.items()), Decimal(0)
            )
            cash = account.cash
        equity = cash + value
        body = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, account.api_key)),
            "account_number": account.number,
            "status": "ACTIVE",
            "crypto_status": "ACTIVE",
            "currency": account.currency,
            "buying_power": dec(cash),
            "regt_buying_power": dec(cash),
            "daytrading_buying_power": "0",
            "non_marginable_buying_power": dec(cash),
            "cash": dec(cash),
            "accrued_fees": "0",
            "portfolio_value": dec(equity),
            "pattern_day_trader": False,
            "trading_blocked": False,
            "transfers_blocked": False,
            "account_blocked": False,
            "created_at": "2026-01-02T15:00:00Z",
            "trade_suspended_by_user": False,
            "multiplier": "1",
            "shorting_enabled": False,
            "equity": dec(equity),
            "last_equity": dec(equity),
            "long_market_value": dec(value),
            "short_market_value": "0",
            "initial_margin": "0",
            "maintenance_margin": "0",
            "last_maintenance_margin": "0",
            "sma": "0",
            "daytrade_count": 0,
        }
        return json_response(200, body)

    async def post_order(request: Request, account: Account) -> Response:
        try:
            data = json.loads(await request.body(), parse_float=Decimal)
        except ValueError:
            return _error(400, 40010000, "request body format is invalid")
        if not isinstance(data, dict):
            return _error(400, 40010000, "request body format is invalid")
        symbol, side, type_ = data.get("symbol"), data.get("side"), data.get("type")
        tif = data.get("time_in_force")
        if not symbol:
            return _error(422, 40010001, "symbol is required")
        if tif not in _TIFS:
            return _error(422, 40010001, "invalid time_in_force")
        if type_ not in ("market", "limit"):
            return _error(422, 40010001, "invalid order type")
        if side not in ("buy", "sell"):
            return _error(422, 40010001, "invalid side")
        try:
            qty = Decimal(str(data.get("qty")))
            limit = Decimal(str(data["limit_price"])) if data.get("limit_price") is not None else None
        except (InvalidOperation, ValueError):
            return _error(422, 40010001, "invalid qty or limit_price")
        if not qty.is_finite() or qty <= 0:
            return _error(422, 40010001, "qty must be > 0")
        if type_ == "limit" and limit is None:
            return _error(422, 40010001, "limit_price is required for limit orders")
        client_order_id = data.get("client_order_id") or str(uuid.uuid4())
        if len(client_order_id) > 128:
            return _error(422, 40010001, "client_order_id must be no more than 128 characters")
        try:
            order = venue.place(
                account,
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=type_,
                qty=qty,
                limit_price=limit,
                tif=tif,
            )
        except VenueRejection as exc:
            if exc.kind in ("bad_quantity", "bad_price"):
                return _error(422, 40010001, str(exc))
            return _rejection(exc)
        return json_response(200, order_body(order, venue.instruments[order.symbol]))

    async def list_orders(request: Request, account: Account) -> Response:
        status = request.query_params.get("status", "open")
        orders = venue.list_orders(account, open_only=status == "open")
        if status == "closed":
            orders = [o for o in orders if o.status not in ("new", "partially_filled")]
        after = request.query_params.get("after")
        if after:
            since = _parse_time(after, 0)
            orders = [o for o in orders if o.updated > since]
        orders.sort(key=lambda o: o.created, reverse=True)
        return json_response(200, [order_body(o, venue.instruments[o.symbol]) for o in orders])

    async def get_order(request: Request, account: Account) -> Response:
        order = venue.get(account, request.path_params["order_id"])
        if order is None:
            return _rejection(VenueRejection("not_found"))
        return json_response(200, order_body(order, venue.instruments[order.symbol]))

    async def get_order_by_client_id(request: Request, account: Account) -> Response:
        order = venue.get_by_client_id(account, request.query_params.get("client_order_id", ""))
        if order is None:
            return _rejection(VenueRejection("not_found"))
        return json_response(200, order_body(order, venue.instruments[order.symbol]))

    async def delete_order(request: Request, account: Account) -> Response:
        order = venue.get(account, request.path_params["order_id"])
        if order is None:
            return _rejection(VenueRejection("not_found"))
        try:
            venue.cancel(account, order)
        except VenueRejection as exc:
            return _rejection(exc)
        return Response(status_code=204)

    async def positions(request: Request, account: Account) -> Response:
        rows = []
        with venue.lock:
            for symbol, (qty, avg) in sorted(account.positions.items()):
                inst = venue.instruments[symbol]
                price = inst.bid
                rows.append(
                    {
                        "asset_id": _asset_id(symbol),
                        "symbol": symbol,
                        "exchange": inst.exchange,
                        "asset_class": inst.asset_class,
                        "asset_marginable": False,
                        "qty": dec(qty),
                        "qty_available": dec(qty),
                        "avg_entry_price": dec(avg),
                        "side": "long" if qty > 0 else "short",
                        "market_value": dec(qty * price),
                        "cost_basis": dec(qty * avg),
                        "unrealized_pl": dec(qty * (price - avg)),
                        "unrealized_plpc": "0",
                        "unrealized_intraday_pl": "0",
                        "unrealized_intraday_plpc": "0",
                        "current_price": dec(price),
                        "lastday_price": dec(price),
                        "change_today": "0",
                    }
                )
        return json_response(200, rows)

    async def assets(request: Request, account: Account) -> Response:
        status = request.query_params.get("status")
        rows = [asset_body(i) for i in venue.instruments.values()]
        if status:
            rows = [r for r in rows if r["status"] == status]
        return json_response(200, rows)

    async def asset(request: Request, account: Account) -> Response:
        inst = venue.instruments.get(request.path_params["symbol"])
        if inst is None:
            return _error(404, 40410000, "asset not found")
        return json_response(200, asset_body(inst))

    async def clock(request: Request, account: Account) -> Response:
        now = datetime.now(tz=UTC)
        body = {
            "timestamp": now.isoformat(),
            "is_open": True,  # the loopback venue trades around the clock
            "next_open": (now + timedelta(days=1)).isoformat(),
            "next_close": (now + timedelta(hours=8)).isoformat(),
        }
        return json_response(200, body)

    async def latest_quotes(request: Request, account: Account) -> Response:
        symbols = [s for s in request.query_params.get("symbols", "").split(",") if s]
        out = {}
        for symbol in symbols:
            inst = venue.instruments.get(symbol)
            if inst is not None:
                out[symbol] = _quote_body(inst, time.time())
        return json_response(200, {"quotes": out})

    async def bars(request: Request, account: Account) -> Response:
        symbols = [s for s in request.query_params.get("symbols", "").split(",") if s]
        interval = _parse_timeframe(request.query_params.get("timeframe", ""))
        if interval is None:
            return _error(422, 42210000, "invalid timeframe")
        end = _parse_time(request.query_params.get("end"), time.time() - 900)
        start = _parse_time(request.query_params.get("start"), end - 86400)
        limit = int(request.query_params.get("limit") or 1000)
        token = request.query_params.get("page_token")
        if token:
            start = float(token)
        out: dict[str, list[dict[str, Any]]] = {}
        next_token = None
        for symbol in symbols:
            inst = venue.instruments.get(symbol)
            if inst is None:
                continue
            rows = _bars(inst, start, end, interval)
            if len(rows) > limit:
                next_token = str(_parse_time(rows[limit]["t"], 0))
                rows = rows[:limit]
            out[symbol] = rows
        return json_response(200, {"bars": out, "next_page_token": next_token})

    async def stream(websocket: WebSocket) -> None:
        await _serve_stream(venue, websocket)

    async def trading_stream(websocket: WebSocket) -> None:
        await _serve_trading_stream(venue, websocket)

    routes = [
        Route("/v2/account", endpoint(get_account)),
        Route("/v2/orders", endpoint(post_order), methods=["POST"]),
        Route("/v2/orders", endpoint(list_orders), methods=["GET"]),
        Route("/v2/orders:by_client_order_id", endpoint(get_order_by_client_id)),
        Route("/v2/orders/{order_id}", endpoint(get_order), methods=["GET"]),
        Route("/v2/orders/{order_id}", endpoint(delete_order), methods=["DELETE"]),
        Route("/v2/positions", endpoint(positions)),
        Route("/v2/assets", endpoint(assets)),
        Route("/v2/assets/{symbol}", endpoint(asset)),
        Route("/v2/clock", endpoint(clock)),
        Route("/v2/stocks/quotes/latest", endpoint(latest_quotes)),
        Route("/v2/stocks/bars", endpoint(bars)),
        WebSocketRoute("/stream", trading_stream),
        WebSocketRoute("/v2/{feed}", stream),
    ]
    return Starlette(routes=routes)


def _quote_body(inst: Instrument, ts: float) -> dict[str, Any]:
    return {
        "t": _iso(ts),
        "ax": "V",
        "ap": float(inst.ask),
        "as": 1,
        "bx": "V",
        "bp": float(inst.bid),
        "bs": 1,
        "c": ["R"],
        "z": "C",
    }


async def _serve_stream(venue: Venue, websocket: WebSocket) -> None:
    """Alpaca's market data stream: connected -> auth -> subscribe -> quotes as they change."""
    use_msgpack = "msgpack" in (websocket.headers.get("content-type") or "")
    await websocket.accept()
    generation = venue.websocket_generation

    async def send(messages: list[dict[str, Any]]) -> None:
        if use_msgpack:
            await websocket.send_bytes(msgpack.packb(messages, datetime=True))
        else:
            await websocket.send_text(json.dumps(messages, default=str))

    async def receive() -> dict[str, Any]:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("bytes")
        data = msgpack.unpackb(raw) if raw is not None else json.loads(message.get("text") or "{}")
        return data if isinstance(data, dict) else {}

    await send([{"T": "success", "msg": "connected"}])
    try:
        auth = await asyncio.wait_for(receive(), 10)
        if auth.get("action") != "auth" or venue.authenticate(auth.get("key"), auth.get("secret")) is None:
            await send([{"T": "error", "code": 402, "msg": "auth failed"}])
            await websocket.close(code=1008)
            return
        await send([{"T": "success", "msg": "authenticated"}])
        subscribed: set[str] = set()
        seen: dict[str, int] = {}
        pending: asyncio.Task[dict[str, Any]] | None = None
        while True:
            if venue.websocket_generation != generation:  # an injected drop: close without goodbye
                if pending is not None:
                    pending.cancel()
                await websocket.close(code=1011)
                return
            if pending is None:
                pending = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({pending}, timeout=0.05)
            if pending in done:
                msg = pending.result()
                pending = None
                if msg.get("action") == "subscribe":
                    subscribed |= set(msg.get("quotes") or [])
                elif msg.get("action") == "unsubscribe":
                    subscribed -= set(msg.get("quotes") or [])
                await send(
                    [
                        {
                            "T": "subscription",
                            "trades": [],
                            "quotes": sorted(subscribed),
                            "bars": [],
                            "updatedBars": [],
                            "dailyBars": [],
                            "statuses": [],
                            "lulds": [],
                            "corrections": [],
                            "cancelErrors": [],
                        }
                    ]
                )
            frames = []
            for symbol in sorted(subscribed):
                inst = venue.instruments.get(symbol)
                if inst is None or seen.get(symbol) == inst.quote_seq:
                    continue
                seen[symbol] = inst.quote_seq
                now = time.time()
                quote = _quote_body(inst, now)
                quote["t"] = msgpack.Timestamp.from_unix_nano(int(now * 1e9)) if use_msgpack else quote["t"]
                frames.append({"T": "q", "S": symbol, **quote})
            if frames:
                await send(frames)
    except (TimeoutError, WebSocketDisconnect, RuntimeError):
        return


def trade_update(event: UserEvent, inst: Instrument, position_qty: Decimal) -> dict[str, Any]:
    """One `trade_updates` message as Alpaca sends it."""
    data: dict[str, Any] = {
        "event": event.kind,
        "timestamp": _iso(event.order.updated),
        "order": order_body(event.order, inst),
    }
    if event.fill is not None:
        data.update(
            execution_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sim-exec:{event.seq}")),
            price=dec(event.fill.price),
            qty=dec(event.fill.qty),
            position_qty=dec(position_qty),
        )
    return {"stream": "trade_updates", "data": data}


async def _serve_trading_stream(venue: Venue, websocket: WebSocket) -> None:
    """Alpaca's trading stream: authenticate -> listen trade_updates -> the account's order events."""
    await websocket.accept()
    generation = venue.websocket_generation

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_bytes(json.dumps(message).encode())

    async def receive() -> dict[str, Any]:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("bytes") or (message.get("text") or "{}").encode()
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}

    try:
        auth = await asyncio.wait_for(receive(), 10)
        creds = auth.get("data") or {}
        account = venue.authenticate(creds.get("key_id"), creds.get("secret_key"))
        if auth.get("action") not in ("auth", "authenticate") or account is None:
            await send(
                {
                    "stream": "authorization",
                    "data": {
                        "action": "authenticate",
                        "status": "unauthorized",
                        "message": "access key verification failed",
                    },
                }
            )
            await websocket.close(code=1008)
            return
        await send({"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}})
        listening = False
        last_seq = venue.last_event_seq()  # a stream starts now: what happened before is REST's
        pending: asyncio.Task[dict[str, Any]] | None = None
        while True:
            if venue.websocket_generation != generation:  # an injected drop: close without goodbye
                if pending is not None:
                    pending.cancel()
                await websocket.close(code=1011)
                return
            if pending is None:
                pending = asyncio.ensure_future(receive())
            done, _ = await asyncio.wait({pending}, timeout=0.05)
            if pending in done:
                msg = pending.result()
                pending = None
                if msg.get("action") == "listen":
                    streams = list((msg.get("data") or {}).get("streams") or [])
                    listening = "trade_updates" in streams
                    await send({"stream": "listening", "data": {"streams": streams}})
            events = venue.events_after(account.api_key, last_seq)
            if venue.websocket_generation != generation:
                continue  # dropped meanwhile: these are not this socket's to send
            for event in events:
                last_seq = event.seq
                if not listening or event.hidden:
                    continue
                with venue.lock:
                    inst = venue.instruments[event.order.symbol]
                    held = account.positions.get(event.order.symbol, (Decimal(0), Decimal(0)))[0]
                await send(trade_update(event, inst, held))
    except (TimeoutError, WebSocketDisconnect, RuntimeError, ValueError):
        return
