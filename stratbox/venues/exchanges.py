"""Crypto exchanges through ccxt's unified API: one adapter, each exchange is configuration.

Configuration: `{"exchange": "binance", "sandbox": bool, "urls": {"public": ..., "private": ...},
"options": {...}}` (urls only to point at another server, e.g. the loopback venue); credentials
`{"api_key", "secret"}` (or `api_secret`, as the dashboard's form names it; plus `password` / `uid` where the exchange wants them).

Numbers: the exchange is told to hand every number back as a string (`exchange.number = str`),
which become Decimals here; amounts and prices go out as exchange-precision strings.
ccxt's own throttle stays on (it spaces one process's calls); the shared bucket spaces every
process's. Quotes come from the exchange's best bid/ask stream (ccxt pro `watch_bids_asks`) where
it has one, with REST polling (`fetch_bids_asks` / `fetch_ticker`) whenever the stream is quiet.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro

from stratbox.venues.base import (
    DUPLICATE_CLIENT_ORDER_ID,
    INSUFFICIENT_FUNDS_AT_VENUE,
    VENUE_AUTH_FAILED,
    VENUE_ORDER_NOT_FOUND,
    VENUE_RATE_LIMITED,
    VENUE_REJECTED,
    VENUE_UNAVAILABLE,
    Balance,
    Bar,
    Capabilities,
    Instrument,
    OpenOrdersProvider,
    OrderIntent,
    OrderReportHandler,
    Position,
    Quote,
    QuoteHandler,
    StreamHealth,
    VenueAdapter,
    VenueError,
    VenueOrder,
    dec,
    dec_or_none,
)
from stratbox.venues.ratelimit import TokenBucket
from stratbox.venues.streaming import RECOVER, reports_in_this_thread, stream_with_polling

# Per exchange: options that keep ccxt on the spot API only (no margin/futures/wallet endpoints).
_SPOT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
}
_TIMEFRAMES = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 14400: "4h", 86400: "1d"}
# Binance's execution types (executionReport `x`) as user-stream events; TRADE is a fill or a partial one.
_EXECUTION_EVENTS = {"NEW": "new", "CANCELED": "canceled", "REJECTED": "rejected", "EXPIRED": "expired"}
# Duplicate client order id messages, per exchange (ccxt raises them as InvalidOrder).
_DUPLICATE_MARKERS = ("Duplicate order sent", "Duplicate clientOrderId", "duplicate client order")


class CcxtAdapter(VenueAdapter):
    def __init__(
        self,
        *,
        credentials: dict[str, str],
        config: dict[str, Any],
        bucket: TokenBucket | None = None,
        timeout: float = 10.0,
        venue: str | None = None,
    ) -> None:
        exchange_id = str(config.get("exchange", "")).lower()
        exchange_class = getattr(ccxt, exchange_id, None)
        if exchange_id not in ccxt.exchanges or exchange_class is None:
            raise VenueError(VENUE_REJECTED, f"ccxt has no exchange {exchange_id!r}")
        self.venue = venue or exchange_id.upper()
        # Binance takes client order ids of at most 36 characters; other exchanges: configuration.
        self.client_id_max = int(config.get("client_id_max", 36))
        self.config = config
        self.bucket = bucket
        options = {**_SPOT_OPTIONS.get(exchange_id, {}), **(config.get("options") or {})}
        self.exchange: ccxt.Exchange = exchange_class(
            {
                "apiKey": credentials.get("api_key", ""),
                "secret": credentials.get("secret") or credentials.get("api_secret", ""),
                **({"password": credentials["password"]} if credentials.get("password") else {}),
                **({"uid": credentials["uid"]} if credentials.get("uid") else {}),
                "timeout": int(timeout * 1000),
                "enableRateLimit": True,
                # ccxt logs every request's headers at DEBUG, the API key among them: redacted.
                "logger": _RedactingLogger([v for v in credentials.values() if len(v) >= 4]),
                "options": options,
            }
        )
        self.exchange.number = str
        if config.get("sandbox"):
            self.exchange.set_sandbox_mode(True)
        for name, url in (config.get("urls") or {}).items():
            self.exchange.urls["api"][name] = url
        self._lock = threading.Lock()  # one ccxt instance is not meant for concurrent calls

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any, sending: bool = False, **kwargs: Any) -> Any:
        if method != "load_markets" and not self.exchange.markets:
            # ccxt loads the markets inside most calls: load them first so that request takes a token too.
            self._call("load_markets")
        if self.bucket is not None:
            self.bucket.take()
        try:
            with self._lock:
                return getattr(self.exchange, method)(*args, **kwargs)
        except ccxt.InsufficientFunds as exc:
            raise VenueError(INSUFFICIENT_FUNDS_AT_VENUE, _message(exc)) from exc
        except ccxt.OrderNotFound as exc:
            raise VenueError(VENUE_ORDER_NOT_FOUND, _message(exc)) from exc
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            retry_after = _retry_after(self.exchange)
            if self.bucket is not None:
                self.bucket.penalise(retry_after)
            raise VenueError(VENUE_RATE_LIMITED, _message(exc), retry_after=retry_after) from exc
        except ccxt.AuthenticationError as exc:
            raise VenueError(VENUE_AUTH_FAILED, _message(exc)) from exc
        except (ccxt.NetworkError, ccxt.OperationFailed) as exc:  # timeouts, resets, 5xx: unclear outcome
            raise VenueError(VENUE_UNAVAILABLE, _message(exc), uncertain=sending) from exc
        except ccxt.InvalidOrder as exc:
            message = _message(exc)
            if any(marker.lower() in message.lower() for marker in _DUPLICATE_MARKERS):
                raise VenueError(DUPLICATE_CLIENT_ORDER_ID, message) from exc
            raise VenueError(VENUE_REJECTED, message) from exc
        except ccxt.BaseError as exc:
            raise VenueError(VENUE_REJECTED, _message(exc)) from exc

    def _markets(self) -> dict[str, Any]:
        if not self.exchange.markets:
            self._call("load_markets")
        return self.exchange.markets

    @staticmethod
    def _order(raw: dict[str, Any]) -> VenueOrder:
        filled = dec(raw.get("filled") or 0)
        unified = raw.get("status")
        if unified == "open":
            status = "partially_filled" if filled > 0 else "accepted"
        else:
            status = {
                "closed": "filled",
                "canceled": "cancelled",
                "expired": "expired",
                "rejected": "rejected",
            }.get(str(unified), "accepted")
        return VenueOrder(
            venue_order_id=str(raw.get("id")),
            client_order_id=str(raw.get("clientOrderId") or ""),
            symbol=str(raw.get("symbol") or ""),
            side=str(raw.get("side")),
            qty=dec(raw.get("amount") or 0),
            filled_qty=filled,
            avg_fill_price=dec_or_none(raw.get("average")),
            status=status,
            limit_price=dec_or_none(raw.get("price")) if raw.get("type") == "limit" else None,
            raw_status=str(unified),
        )

    # -- the interface -----------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(
            order_types=("market", "limit"),
            time_in_force=("gtc", "ioc", "fok"),
            shorting=False,
            fractional=True,
            market_stream=self._streams(),
        )

    def _streams(self) -> bool:
        pro = getattr(ccxt.pro, self.exchange.id, None)  # the sync class does not list websocket features
        return bool(pro is not None and pro().has.get("watchBidsAsks"))

    def check(self) -> None:
        self._call("fetch_balance")

    def instruments(self) -> list[Instrument]:
        out = []
        for market in self._markets().values():
            if not market.get("spot"):
                continue
            precision, limits = market.get("precision") or {}, market.get("limits") or {}
            lot = dec(precision.get("amount") or "0.00000001")
            out.append(
                Instrument(
                    symbol=market["symbol"],
                    venue_symbol=market["id"],
                    tick=dec(precision.get("price") or "0.00000001"),
                    lot=lot,
                    min_qty=dec((limits.get("amount") or {}).get("min") or lot),
                    status="active" if market.get("active", True) is not False else "halted",
                    hours={},  # crypto spot trades around the clock
                    name=f"{market.get('base')} / {market.get('quote')}",
                    asset_class="crypto",
                )
            )
        return out

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        if not symbols:
            return {}
        now = time.time()
        if self.exchange.has.get("fetchBidsAsks"):
            raw = self._call("fetch_bids_asks", symbols)
        else:
            raw = {s: self._call("fetch_ticker", s) for s in symbols}
        out = {}
        for symbol in symbols:
            ticker = raw.get(symbol)
            if ticker and ticker.get("bid") is not None and ticker.get("ask") is not None:
                ts = ticker.get("timestamp")
                out[symbol] = Quote(
                    symbol, dec(ticker["bid"]), dec(ticker["ask"]), float(ts) / 1000 if ts else now
                )
        return out

    def bars(self, symbol: str, *, interval_seconds: int, start: datetime, end: datetime) -> list[Bar]:
        timeframe = _TIMEFRAMES.get(interval_seconds)
        if timeframe is None:
            raise VenueError(VENUE_REJECTED, f"no {interval_seconds}s bars through ccxt")
        since, until = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        bars: list[Bar] = []
        while since <= until:
            rows = self._call("fetch_ohlcv", symbol, timeframe, since, 1000, {"until": until})
            rows = [r for r in rows if int(r[0]) <= until]
            if not rows:
                break
            for ts, o, h, low, c, v in rows:
                bars.append(
                    Bar(
                        datetime.fromtimestamp(int(ts) / 1000, tz=UTC),
                        dec(o),
                        dec(h),
                        dec(low),
                        dec(c),
                        dec(v or 0),
                    )
                )
            since = int(rows[-1][0]) + interval_seconds * 1000
        return bars

    def place(self, intent: OrderIntent) -> VenueOrder:
        self._markets()  # the precision helpers below read the markets before any call loads them
        amount = self.exchange.amount_to_precision(intent.symbol, str(intent.qty))
        price = (
            self.exchange.price_to_precision(intent.symbol, str(intent.limit_price))
            if intent.type == "limit"
            else None
        )
        params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
        if intent.type == "limit":
            params["timeInForce"] = intent.tif.upper()
        raw = self._call(
            "create_order", intent.symbol, intent.type, intent.side, amount, price, params, sending=True
        )
        order = self._order(raw)
        return order if order.client_order_id else _with_client_id(order, intent.client_order_id)

    def order_by_client_id(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        try:
            return self._order(self._call("fetch_order", None, symbol, {"clientOrderId": client_order_id}))
        except VenueError as exc:
            if exc.code == VENUE_ORDER_NOT_FOUND:
                return None
            raise

    def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        self._call("cancel_order", None, symbol, {"clientOrderId": client_order_id})
        order = self.order_by_client_id(client_order_id, symbol)
        if order is None:
            raise VenueError(VENUE_ORDER_NOT_FOUND, f"no order {client_order_id} at {self.venue}")
        return order

    def positions(self) -> list[Position]:
        """Spot holds currencies, not positions: every non-quote balance is a position (avg price unknown: 0)."""
        quote_ccys = {m.get("quote") for m in self._markets().values()}
        out = []
        for balance in self.balances():
            if balance.currency not in quote_ccys and balance.total != 0:
                out.append(Position(balance.currency, balance.total, Decimal(0)))
        return out

    def balances(self) -> list[Balance]:
        raw = self._call("fetch_balance")
        out = []
        for currency, total in (raw.get("total") or {}).items():
            free = (raw.get("free") or {}).get(currency)
            out.append(Balance(currency, dec(free or 0), dec(total or 0)))
        return out

    def stream_quotes(
        self, symbols: list[str], on_quote: QuoteHandler, stop: threading.Event, health: StreamHealth
    ) -> None:
        stream_with_polling(
            run_stream=functools.partial(self._run_stream, symbols, health=health)
            if self._streams()
            else None,
            poll=lambda: self.quotes(symbols),
            on_quote=on_quote,
            stop=stop,
            health=health,
            stale_after=float(self.config.get("stale_after", 5.0)),
            poll_interval=float(self.config.get("poll_interval", 1.0)),
        )

    def stream_orders(
        self,
        on_report: OrderReportHandler,
        stop: threading.Event,
        health: StreamHealth,
        open_orders: OpenOrdersProvider | None = None,
    ) -> None:
        """ccxt pro's `watch_orders` (Binance: the WebSocket API user data stream) in this thread's own
        event loop; after every (re)subscription the orders we think open are read over REST."""
        reports_in_this_thread(
            lambda emit: asyncio.run(self._watch_orders(emit, stop, health)),
            on_report,
            lambda: self.recover_orders(open_orders, on_report),
        )

    async def _watch_orders(self, emit: Any, stop: threading.Event, health: StreamHealth) -> None:
        exchange = self._pro(private=True)
        ws_api = exchange.urls["api"]["ws"].get("ws-api", {}).get("spot")
        client: Any = None
        retries = 0
        seen: dict[str, tuple[Any, ...]] = {}
        try:
            await exchange.load_markets()
            while not stop.is_set():
                try:
                    if client is None or exchange.clients.get(ws_api) is not client:
                        if client is not None:
                            health.drops += 1
                            client = None  # counted once, however many attempts the reconnect takes
                        await exchange.authenticate()  # (re)subscribes: returns once the venue acknowledged
                        client = exchange.clients.get(ws_api)
                        health.connects += 1
                        retries = 0
                        emit(RECOVER)
                    await asyncio.wait_for(exchange.watch_orders(), timeout=0.25)
                except TimeoutError:
                    pass  # nothing woke us: still look at the cache (below), then at `stop`
                except ccxt.BaseError as exc:
                    retries += 1
                    health.errors = [*health.errors[-9:], _message(exc)]
                    await asyncio.sleep(min(0.1 * 2**retries, 10.0))
                    continue
                self._drain_orders(exchange, seen, emit)
        finally:
            await exchange.close()

    def _drain_orders(self, exchange: Any, seen: dict[str, tuple[Any, ...]], on_report: Any) -> None:
        """Report every cached order whose state changed since we last reported it.

        ccxt pro resolves `watch_orders` only for an update that arrives while a call is waiting:
        one landing while we were applying the previous report sits in the exchange's order cache
        until the next update, so the cache (not the call's answer) is what is read here.
        """
        for raw in list(exchange.orders or []):
            info = raw.get("info") or {}
            signature = (raw.get("status"), raw.get("filled"), info.get("x"), info.get("E"))
            key = str(raw.get("id"))
            if seen.get(key) == signature:
                continue
            seen[key] = signature
            execution = str(info.get("x") or "")
            if execution == "TRADE":
                event = "fill" if info.get("X") == "FILLED" else "partial_fill"
            else:
                event = _EXECUTION_EVENTS.get(execution, execution.lower())
            on_report(replace(self._order(raw), event=event))
        if len(seen) > 5000:  # the cache holds the last 1000 orders: forget what fell out of it
            current = {str(raw.get("id")) for raw in exchange.orders or []}
            for key in [k for k in seen if k not in current]:
                del seen[key]

    def _pro(self, *, private: bool = False) -> Any:
        """A ccxt pro instance of this exchange, pointed where the REST one is (and, private, with its keys)."""
        config: dict[str, Any] = {"timeout": self.exchange.timeout, "options": dict(self.exchange.options)}
        if private:
            config.update(apiKey=self.exchange.apiKey, secret=self.exchange.secret)
            if self.exchange.password:
                config["password"] = self.exchange.password
        exchange = getattr(ccxt.pro, self.exchange.id)(config)
        exchange.number = str
        if self.config.get("sandbox"):
            exchange.set_sandbox_mode(True)
        for name, url in (self.config.get("urls") or {}).items():
            exchange.urls["api"][name] = url
        if self.config.get("ws_url"):
            exchange.urls["api"]["ws"]["spot"] = self.config["ws_url"]
        ws_api = self.config.get("ws_api_url") or (
            str(self.config["ws_url"]).removesuffix("/ws") + "/ws-api/v3"
            if self.config.get("ws_url")
            else None
        )
        if ws_api and isinstance(exchange.urls["api"]["ws"].get("ws-api"), dict):
            exchange.urls["api"]["ws"]["ws-api"]["spot"] = ws_api
        exchange.markets = None
        return exchange

    def _run_stream(
        self, symbols: list[str], on_quote: QuoteHandler, stop: threading.Event, *, health: StreamHealth
    ) -> None:
        """ccxt pro's best bid/ask stream in this thread's own event loop; a dropped socket is retried."""
        asyncio.run(self._watch(symbols, on_quote, stop, health))

    async def _watch(
        self, symbols: list[str], on_quote: QuoteHandler, stop: threading.Event, health: StreamHealth
    ) -> None:
        exchange = self._pro()
        connected, retries = False, 0
        try:
            await exchange.load_markets()
            while not stop.is_set():
                try:
                    tickers = await asyncio.wait_for(exchange.watch_bids_asks(symbols), timeout=1.0)
                except TimeoutError:  # nothing new: look at `stop` again
                    continue
                except ccxt.BaseError as exc:
                    if connected:
                        health.drops += 1
                    connected, retries = False, retries + 1
                    health.errors = [*health.errors[-9:], _message(exc)]
                    await asyncio.sleep(min(0.2 * 2**retries, 10.0))
                    continue
                if not connected:
                    health.connects += 1
                    connected, retries = True, 0
                for symbol, ticker in tickers.items():
                    if ticker.get("bid") is not None and ticker.get("ask") is not None:
                        ts = ticker.get("timestamp")
                        on_quote(
                            Quote(
                                symbol,
                                dec(ticker["bid"]),
                                dec(ticker["ask"]),
                                float(ts) / 1000 if ts else time.time(),
                            )
                        )
        finally:
            await exchange.close()


class _RedactingLogger:
    """What ccxt logs through (`exchange.logger`), with the account's credentials masked out."""

    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted(secrets, key=len, reverse=True)

    def _log(self, level: int, msg: Any, *args: Any) -> None:
        if not _ccxt_log.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        for secret in self._secrets:
            text = text.replace(secret, "••••")
        _ccxt_log.log(level, "%s", text)

    def debug(self, msg: Any, *args: Any) -> None:
        self._log(logging.DEBUG, msg, *args)

    def info(self, msg: Any, *args: Any) -> None:
        self._log(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any) -> None:
        self._log(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any) -> None:
        self._log(logging.ERROR, msg, *args)


_ccxt_log = logging.getLogger("stratbox.venues.ccxt")


def _message(exc: Exception) -> str:
    return str(exc)[:500]


def _retry_after(exchange: ccxt.Exchange) -> float:
    headers = getattr(exchange, "last_response_headers", None) or {}
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after") or 1)
    except ValueError:
        return 1.0


def _with_client_id(order: VenueOrder, client_order_id: str) -> VenueOrder:
    return replace(order, client_order_id=client_order_id)
