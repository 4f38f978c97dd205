"""Alpaca through alpaca-py: trading (paper or live), stock market data and the quote stream.

Configuration: `{"environment": "paper" | "live", "trading_url", "data_url", "stream_url",
"feed": "iex" | "sip"}` (urls only to point at another server, e.g. the loopback venue);
credentials `{"api_key_id", "api_secret_key"}` (or `api_key` / `api_secret`).

Two deliberate departures from the client's defaults:
- Responses are taken raw (`raw_data=True`): quantities and prices stay the strings Alpaca sent,
  and become Decimals here, never floats.
- The client's own retry of 429 and 504 is switched off (it would resend a POST /orders whose
  first attempt may have been accepted). Throttling is the shared bucket's job, and a send whose
  outcome is unclear is reported `uncertain` for the caller to resolve by client_order_id.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from datetime import datetime
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetStatus
from alpaca.trading.requests import GetAssetsRequest, LimitOrderRequest, MarketOrderRequest
from alpaca.trading.stream import TradingStream

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

_STATUS = {
    "new": "accepted",
    "accepted": "accepted",
    "pending_new": "accepted",
    "accepted_for_bidding": "accepted",
    "pending_cancel": "accepted",
    "pending_replace": "accepted",
    "done_for_day": "accepted",
    "calculated": "accepted",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "canceled": "cancelled",
    "replaced": "cancelled",
    "stopped": "filled",
    "expired": "expired",
    "rejected": "rejected",
    "suspended": "rejected",
}


# The regular session of US equities (Market.trading_hours); DAY orders expire at its close.
US_EQUITY_SESSION = {"tz": "America/New_York", "open": "09:30", "close": "16:00", "days": [0, 1, 2, 3, 4]}


class AlpacaAdapter(VenueAdapter):
    def __init__(
        self,
        *,
        credentials: dict[str, str],
        config: dict[str, Any],
        bucket: TokenBucket | None = None,
        timeout: float = 10.0,
        venue: str = "ALPACA",
    ) -> None:
        self.venue = venue
        self.config = config
        self.bucket = bucket
        # Alpaca's names, or the generic ones the dashboard's live-account form sends.
        key = credentials.get("api_key_id") or credentials.get("api_key", "")
        secret = credentials.get("api_secret_key") or credentials.get("api_secret", "")
        self._key, self._secret = key, secret
        paper = config.get("environment", "paper") != "live"
        self.trading = TradingClient(
            key, secret, paper=paper, raw_data=True, url_override=config.get("trading_url")
        )
        self.data = StockHistoricalDataClient(key, secret, raw_data=True, url_override=config.get("data_url"))
        for client in (self.trading, self.data):
            client._retry_codes = []  # never let the client resend a POST: see the module docstring
            # requests has no session-wide timeout: without one a silent venue hangs the worker.
            client._session.request = functools.partial(client._session.request, timeout=timeout)  # type: ignore[method-assign]

    # -- plumbing ----------------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, sending: bool = False) -> Any:
        if self.bucket is not None:
            self.bucket.take()
        try:
            return fn(*args)
        except APIError as exc:
            raise self._map(exc, sending=sending) from exc
        except requests.RequestException as exc:
            raise VenueError(VENUE_UNAVAILABLE, f"Alpaca did not answer: {exc}", uncertain=sending) from exc

    def _map(self, exc: APIError, *, sending: bool) -> VenueError:
        status = exc.status_code or 0
        try:
            code, message = int(exc.code), str(exc.message)
        except (ValueError, KeyError, TypeError):
            code, message = 0, str(exc)[:300]
        if status == 429:
            retry_after = _retry_after(exc)
            if self.bucket is not None:
                self.bucket.penalise(retry_after)
            return VenueError(VENUE_RATE_LIMITED, message, retry_after=retry_after)
        if status >= 500:
            return VenueError(VENUE_UNAVAILABLE, message, uncertain=sending)
        if status == 401 or code == 40110000:
            return VenueError(VENUE_AUTH_FAILED, message)
        if status == 404:
            return VenueError(VENUE_ORDER_NOT_FOUND, message)
        if code == 40310000 or "insufficient" in message.lower():
            return VenueError(INSUFFICIENT_FUNDS_AT_VENUE, message)
        if "client_order_id must be unique" in message:
            return VenueError(DUPLICATE_CLIENT_ORDER_ID, message)
        return VenueError(VENUE_REJECTED, message)

    @staticmethod
    def _order(raw: dict[str, Any], event: str = "") -> VenueOrder:
        return VenueOrder(
            venue_order_id=str(raw["id"]),
            client_order_id=raw["client_order_id"],
            symbol=raw.get("symbol") or "",
            side=str(raw.get("side")),
            qty=dec(raw.get("qty") or 0),
            filled_qty=dec(raw.get("filled_qty") or 0),
            avg_fill_price=dec_or_none(raw.get("filled_avg_price")),
            status=_STATUS.get(str(raw.get("status")), "accepted"),
            limit_price=dec_or_none(raw.get("limit_price")),
            raw_status=str(raw.get("status")),
            event=event,
        )

    # -- the interface -----------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        return Capabilities(
            order_types=("market", "limit", "stop", "stop_limit", "trailing_stop"),
            time_in_force=("day", "gtc", "opg", "cls", "ioc", "fok"),
            shorting=True,
            fractional=True,
            market_stream=True,
        )

    def check(self) -> None:
        account = self._call(self.trading.get_account)
        if account.get("trading_blocked") or account.get("account_blocked"):
            raise VenueError(VENUE_REJECTED, f"Alpaca account {account.get('account_number')} is blocked")

    def instruments(self) -> list[Instrument]:
        rows = self._call(self.trading.get_all_assets, GetAssetsRequest(status=AssetStatus.ACTIVE))
        out = []
        for a in rows:
            if a.get("class") != "us_equity":
                continue
            lot = dec(a.get("min_trade_increment") or 1)
            out.append(
                Instrument(
                    symbol=a["symbol"],
                    venue_symbol=a["symbol"],
                    tick=dec(a.get("price_increment") or "0.01"),
                    lot=lot,
                    min_qty=dec(a.get("min_order_size") or lot),
                    status="active" if a.get("tradable") and a.get("status") == "active" else "halted",
                    hours=US_EQUITY_SESSION,
                    name=a.get("name") or "",
                    asset_class="us_equity",
                )
            )
        return out

    def quotes(self, symbols: list[str]) -> dict[str, Quote]:
        if not symbols:
            return {}
        request = StockLatestQuoteRequest(symbol_or_symbols=symbols, feed=self._feed())
        raw = self._call(self.data.get_stock_latest_quote, request)
        now = time.time()
        return {s: Quote(s, dec(q["bp"]), dec(q["ap"]), _ts(q.get("t"), now)) for s, q in raw.items()}

    def bars(self, symbol: str, *, interval_seconds: int, start: datetime, end: datetime) -> list[Bar]:
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=_timeframe(interval_seconds),
            start=start,
            end=end,
            feed=self._feed(),
        )
        raw = self._call(self.data.get_stock_bars, request)
        rows = raw.get(symbol, []) if isinstance(raw, dict) else []
        return [
            Bar(
                ts=datetime.fromisoformat(str(b["t"]).replace("Z", "+00:00")),
                open=dec(b["o"]),
                high=dec(b["h"]),
                low=dec(b["l"]),
                close=dec(b["c"]),
                volume=dec(b.get("v", 0)),
            )
            for b in rows
        ]

    def place(self, intent: OrderIntent) -> VenueOrder:
        common = {
            "symbol": intent.symbol,
            "qty": float(intent.qty),  # the request model takes floats; str(Decimal) round-trips through them
            "side": intent.side,
            "time_in_force": intent.tif,
            "client_order_id": intent.client_order_id,
        }
        if intent.type == "limit":
            request: Any = LimitOrderRequest(**common, limit_price=float(intent.limit_price or 0))
        else:
            request = MarketOrderRequest(**common)
        return self._order(self._call(self.trading.submit_order, request, sending=True))

    def order_by_client_id(self, client_order_id: str, symbol: str) -> VenueOrder | None:
        try:
            return self._order(self._call(self.trading.get_order_by_client_id, client_order_id))
        except VenueError as exc:
            if exc.code == VENUE_ORDER_NOT_FOUND:
                return None
            raise

    def cancel(self, client_order_id: str, symbol: str) -> VenueOrder:
        order = self.order_by_client_id(client_order_id, symbol)
        if order is None:
            raise VenueError(VENUE_ORDER_NOT_FOUND, f"no order {client_order_id} at Alpaca")
        self._call(self.trading.cancel_order_by_id, order.venue_order_id)
        after = self.order_by_client_id(client_order_id, symbol)
        return after or order

    def positions(self) -> list[Position]:
        rows = self._call(self.trading.get_all_positions)
        return [Position(p["symbol"], dec(p["qty"]), dec(p["avg_entry_price"])) for p in rows]

    def balances(self) -> list[Balance]:
        account = self._call(self.trading.get_account)
        currency = account.get("currency") or "USD"
        return [Balance(currency, dec(account.get("buying_power") or 0), dec(account.get("cash") or 0))]

    def stream_quotes(
        self, symbols: list[str], on_quote: QuoteHandler, stop: threading.Event, health: StreamHealth
    ) -> None:
        stream_with_polling(
            run_stream=functools.partial(self._run_stream, symbols, health=health),
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
        """alpaca-py's TradingStream (`trade_updates`); it reconnects by itself, and after every
        connect the orders we think open are read over REST before the stream's events are handled."""
        reports_in_this_thread(
            lambda emit: self._run_user_stream(emit, stop, health),
            on_report,
            lambda: self.recover_orders(open_orders, on_report),
        )

    def _run_user_stream(self, emit: Any, stop: threading.Event, health: StreamHealth) -> None:
        stream = _UserStream(
            health,
            lambda: emit(RECOVER),
            self._key,
            self._secret,
            paper=self.config.get("environment", "paper") != "live",
            raw_data=True,
            url_override=self._trading_stream_url(),
        )
        stream._reconnect_min_backoff = float(self.config.get("reconnect_backoff", 1.0))

        async def handler(raw: dict[str, Any]) -> None:
            data = raw.get("data") or {}
            if isinstance(data.get("order"), dict):
                emit(self._order(data["order"], event=str(data.get("event") or "")))

        stream.subscribe_trade_updates(handler)

        async def run() -> None:
            task = asyncio.ensure_future(stream._run_forever())
            while not stop.is_set() and not task.done():
                await asyncio.sleep(0.1)
            await stream.stop_ws()
            await stream.close()  # the client reads with a 5 s timeout: do not wait that out
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

        asyncio.run(run())

    def _trading_stream_url(self) -> str | None:
        """The trading stream: configured, else beside an overridden trading URL, else alpaca-py's own."""
        if self.config.get("trading_stream_url"):
            return str(self.config["trading_stream_url"])
        trading = self.config.get("trading_url")
        if trading:
            return (
                str(trading).replace("https://", "wss://").replace("http://", "ws://").rstrip("/") + "/stream"
            )
        return None

    # -- helpers -------------------------------------------------------------------------------------

    def _feed(self) -> DataFeed:
        return DataFeed.SIP if self.config.get("feed") == "sip" else DataFeed.IEX

    def _run_stream(
        self, symbols: list[str], on_quote: QuoteHandler, stop: threading.Event, *, health: StreamHealth
    ) -> None:
        stream = _CountingStream(
            health,
            self._key,
            self._secret,
            raw_data=True,
            feed=self._feed(),
            url_override=self.config.get("stream_url"),
        )

        async def handler(raw: dict[str, Any]) -> None:
            on_quote(Quote(raw["S"], dec(raw["bp"]), dec(raw["ap"]), _ts(raw.get("t"), time.time())))

        stream.subscribe_quotes(handler, *symbols)

        async def run() -> None:
            task = asyncio.ensure_future(stream._run_forever())
            while not stop.is_set() and not task.done():
                await asyncio.sleep(0.1)
            await stream.stop_ws()
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()

        asyncio.run(run())


class _CountingStream(StockDataStream):
    """The client's stream, counting its (re)connections for the stream's health."""

    def __init__(self, health: StreamHealth, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._health = health

    async def _start_ws(self) -> None:
        if self._health.connects:
            self._health.drops += 1
        await super()._start_ws()
        self._health.connects += 1


class _UserStream(TradingStream):
    """The client's trading stream, counting (re)connections and closing the gap after each one."""

    def __init__(self, health: StreamHealth, recover: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._health = health
        self._recover = recover
        self._was_connected = False

    async def _start_ws(self) -> None:
        if self._was_connected:  # counted once, however many attempts the reconnect takes
            self._health.drops += 1
            self._was_connected = False
        await super()._start_ws()
        self._health.connects += 1
        self._was_connected = True
        self._recover()  # the gap is read over REST by the consuming thread, before what follows


def _retry_after(exc: APIError) -> float:
    response = exc.response
    try:
        return float(response.headers.get("Retry-After", "1")) if response is not None else 1.0
    except ValueError:
        return 1.0


def _timeframe(seconds: int) -> TimeFrame:
    if seconds % 86400 == 0:
        return TimeFrame(seconds // 86400, TimeFrameUnit.Day)
    if seconds % 3600 == 0:
        return TimeFrame(seconds // 3600, TimeFrameUnit.Hour)
    if seconds % 60 == 0:
        return TimeFrame(seconds // 60, TimeFrameUnit.Minute)
    raise VenueError(VENUE_REJECTED, f"Alpaca has no {seconds}s bars")


def _ts(raw: Any, default: float) -> float:
    if raw is None:
        return default
    if hasattr(raw, "to_unix"):  # a msgpack Timestamp from the stream
        return float(raw.to_unix())
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default
