"""The pre-trade risk gate: validation of untrusted intents and the deny codes.

Intents come from the sandbox host and are untrusted: `validate_intent` checks exact types (a
`bool` is not a number, an `int`/`float`/`str` subclass is refused whatever its comparisons say),
finiteness, ranges and the instance's client_order_id prefix. `pre_trade_evaluate` then runs the
checks on trusted data that `order_place` has locked (tenant row, then account row), in this
order — the first failing check wins (every aggregate they need is read by ONE statement,
`selectors.exposure_read`):

  KILL_SWITCH, MODE_OFF / MODE_OBSERVE (the DB's mode, whatever the host claimed), NOT_APPROVED
  (a live account without a current governance approval, see `set_live_approval_checker`),
  MARKET_CLOSED (outside the market's trading hours, `sandbox.sessions`), NO_QUOTE,
  BROKER_UNAVAILABLE (the account's adapter cannot take orders), ORDER_RATE_LIMIT; then
  sells (long-only v1: a sell may only reduce/close the position): INSUFFICIENT_POSITION;
  buys: DAILY_LOSS_LIMIT, CAPITAL_PER_TRADE_EXCEEDED, MAX_POSITIONS_REACHED,
  MAX_POSITION_SIZE_EXCEEDED, INSTANCE_CAPITAL_EXHAUSTED, TENANT_CAPITAL_LIMIT_EXCEEDED,
  INSUFFICIENT_BALANCE.

Sells that reduce a long position lower risk, so the capital and daily-loss checks only gate buys
(getting out is always allowed unless the kill switch is on). All sizes are notional money: the
order's notional is qty * the worst price it can fill at (limit price, or quote side + slippage).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.utils import timezone

from sandbox import fillmodel as fm
from sandbox.context import bracket_value, order_number, order_options_problem
from sandbox.sessions import session_parse
from stratbox.instances.models import Mode, StrategyInstance
from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_is_valid
from stratbox.trading.brokers import BrokerUnavailable, broker_for_account
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import OrderSide
from stratbox.trading.selectors import Exposure, exposure_read, open_positions_unrealized_pnl

# qty and prices above this are nonsense (and would overflow the ledger's 20 integer digits).
MAX_QTY = Decimal("1e12")
MAX_PRICE = Decimal("1e12")
MAX_NOTIONAL = Decimal("1e15")
DEFAULT_MAX_ORDERS_PER_MINUTE = 60
_SUFFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
logger = logging.getLogger(__name__)


class Deny(StrEnum):
    """Every code an order or a signal is denied or skipped with: stored and shown verbatim, next
    to its `label`. The risk gate decides most; the engine the ones marked so."""

    MODE_OFF = "MODE_OFF"
    MODE_OBSERVE = "MODE_OBSERVE"
    NOT_APPROVED = "NOT_APPROVED"
    INVALID_ORDER = "INVALID_ORDER"
    CAPITAL_PER_TRADE_EXCEEDED = "CAPITAL_PER_TRADE_EXCEEDED"
    MAX_POSITIONS_REACHED = "MAX_POSITIONS_REACHED"
    MAX_POSITION_SIZE_EXCEEDED = "MAX_POSITION_SIZE_EXCEEDED"
    INSTANCE_CAPITAL_EXHAUSTED = "INSTANCE_CAPITAL_EXHAUSTED"
    TENANT_CAPITAL_LIMIT_EXCEEDED = "TENANT_CAPITAL_LIMIT_EXCEEDED"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    ORDER_RATE_LIMIT = "ORDER_RATE_LIMIT"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INSUFFICIENT_POSITION = "INSUFFICIENT_POSITION"
    SHORT_NOT_ALLOWED = "SHORT_NOT_ALLOWED"
    NO_QUOTE = "NO_QUOTE"
    MARKET_CLOSED = "MARKET_CLOSED"  # outside the market's trading hours (the message says when it opens)
    BROKER_UNAVAILABLE = "BROKER_UNAVAILABLE"  # an approved live account whose adapter cannot trade
    KILL_SWITCH = "KILL_SWITCH"
    PAUSED = "PAUSED"  # decided by the engine (runtime state); listed so every code lives here
    UNKNOWN_POSITION = "UNKNOWN_POSITION"  # engine: an exit signal named a position the instance lacks
    SIZE_ZERO = "SIZE_ZERO"  # engine: a signal's sizing came to zero (nothing to order)
    ENGINE_ERROR = "ENGINE_ERROR"  # engine: our own failure while placing the order, not the strategy's
    # Decided by the engine's re-check of a host's reply (`stratbox.engine.replies`): a genuine
    # host never sends these, so each is the mark of a forged reply.
    ORDER_QUOTA_EXCEEDED = "ORDER_QUOTA_EXCEEDED"
    ORDER_ID_MISMATCH = "ORDER_ID_MISMATCH"
    MODE_MISMATCH = "MODE_MISMATCH"
    FOREIGN_TARGET = "FOREIGN_TARGET"
    # Decided by a live venue (`stratbox.trading.services.live`), stored with the venue's own message.
    VENUE_REJECTED = "VENUE_REJECTED"
    VENUE_RATE_LIMITED = "VENUE_RATE_LIMITED"
    VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"
    INSUFFICIENT_FUNDS_AT_VENUE = "INSUFFICIENT_FUNDS_AT_VENUE"

    @property
    def label(self) -> str:
        return DENY_LABELS[self]


DENY_LABELS = {
    Deny.MODE_OFF: "the instance is off",
    Deny.MODE_OBSERVE: "observe mode: recorded, never sent",
    Deny.NOT_APPROVED: "no current staff approval for live trading",
    Deny.INVALID_ORDER: "the order intent is malformed",
    Deny.CAPITAL_PER_TRADE_EXCEEDED: "more than the capital per trade",
    Deny.MAX_POSITIONS_REACHED: "the maximum number of positions is open",
    Deny.MAX_POSITION_SIZE_EXCEEDED: "the position would exceed its maximum size",
    Deny.INSTANCE_CAPITAL_EXHAUSTED: "the instance's capital is deployed",
    Deny.TENANT_CAPITAL_LIMIT_EXCEEDED: "the tenant's capital limit would be exceeded",
    Deny.DAILY_LOSS_LIMIT: "the daily loss limit is reached",
    Deny.ORDER_RATE_LIMIT: "too many orders this minute",
    Deny.INSUFFICIENT_BALANCE: "the account's balance is too low",
    Deny.INSUFFICIENT_POSITION: "selling more than the position holds",
    Deny.SHORT_NOT_ALLOWED: "the account does not allow short positions",
    Deny.NO_QUOTE: "no valid quote for the market",
    Deny.MARKET_CLOSED: "the market is closed (outside its trading hours)",
    Deny.BROKER_UNAVAILABLE: "the account's broker cannot trade",
    Deny.KILL_SWITCH: "the tenant's kill switch is on",
    Deny.PAUSED: "the instance is paused",
    Deny.UNKNOWN_POSITION: "the exit names no open position",
    Deny.SIZE_ZERO: "the signal sized to zero",
    Deny.ENGINE_ERROR: "the engine failed to place it",
    Deny.ORDER_QUOTA_EXCEEDED: "too many orders in one call",
    Deny.ORDER_ID_MISMATCH: "not this instance's order id for this tick",
    Deny.MODE_MISMATCH: "the order's status does not match the instance's mode",
    Deny.FOREIGN_TARGET: "another market or account",
    Deny.VENUE_REJECTED: "the venue rejected the order",
    Deny.VENUE_RATE_LIMITED: "the venue's rate limit refused the order",
    Deny.VENUE_UNAVAILABLE: "the venue did not take the order",
    Deny.INSUFFICIENT_FUNDS_AT_VENUE: "the venue account lacks the funds",
}


def deny_label(code: str) -> str:
    """The label of a deny code, or "" for a code that is not one (shown verbatim anyway)."""
    try:
        return Deny(code).label
    except ValueError:
        return ""


# What a PostgreSQL text column cannot hold (stratbox.engine.storable says the same, a layer above).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class InvalidOrder(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class OrderRequest:
    """A validated intent: exact types, finite, in range, qty floored to the market's lot size."""

    client_order_id: str
    side: str
    type: str
    qty: Decimal
    limit_price: Decimal | None
    tag: str
    stop_price: Decimal | None = None
    tif: str = "gtc"
    expire_at: float | None = None
    reduce_only: bool = False
    bracket: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RiskDecision:
    deny: Deny | None
    message: str = ""
    est_price: Decimal | None = None


LiveApprovalChecker = Callable[[StrategyInstance], bool]


def _no_approval(instance: StrategyInstance) -> bool:
    return False


_live_approval_checker: LiveApprovalChecker = _no_approval


def set_live_approval_checker(checker: LiveApprovalChecker | None) -> None:
    """Install the function that decides whether a live instance is approved (None: deny all).

    Dependency inversion: governance sits above trading in the layering, so trading cannot ask it
    directly; `GovernanceConfig.ready()` registers its checker here instead. Until then (and in
    any process where governance is not installed) every live order is denied NOT_APPROVED.
    """
    global _live_approval_checker
    _live_approval_checker = checker or _no_approval


def instance_live_approval_is_current(instance: StrategyInstance) -> bool:
    """Whether a staff approval to trade live covers the instance's current version and config.

    Fails closed: a checker that raises counts as "not approved" (and is logged), never as a pass.
    """
    try:
        return _live_approval_checker(instance) is True
    except Exception:
        logger.exception("live approval checker failed for instance %s: denying", instance.pk)
        return False


def max_orders_per_minute() -> int:
    return int(getattr(settings, "STRATBOX_MAX_ORDERS_PER_MINUTE", DEFAULT_MAX_ORDERS_PER_MINUTE))


def client_order_id_prefix(instance: StrategyInstance) -> str:
    return f"{instance.pk}-"


def validate_client_order_id(*, instance: StrategyInstance, value: Any) -> str:
    if type(value) is not str:
        raise InvalidOrder("client_order_id", "must be a string")
    prefix = client_order_id_prefix(instance)
    if not value.startswith(prefix) or not _SUFFIX.match(value[len(prefix) :]):
        raise InvalidOrder("client_order_id", f"must be '{prefix}<tick seq>-<n>' (letters, digits, _.:-)")
    return value


def _number(field: str, value: Any, *, maximum: Decimal) -> Decimal:
    # `type(x) is` on purpose: bool is an int, and subclasses can lie in __gt__/__float__/__str__.
    if type(value) is not float and type(value) is not int:
        raise InvalidOrder(field, f"must be a number (int or float), got {type(value).__name__}")
    if type(value) is float and not math.isfinite(value):
        raise InvalidOrder(field, "must be finite")
    if value <= 0:
        raise InvalidOrder(field, "must be positive")
    if value > maximum:
        raise InvalidOrder(field, f"must be at most {maximum:.0e}")
    return Decimal(repr(value)) if type(value) is float else Decimal(value)


def validate_intent(*, instance: StrategyInstance, intent: Any) -> OrderRequest:
    """Turn an untrusted intent dict into an `OrderRequest`, or raise `InvalidOrder` naming the field."""
    if type(intent) is not dict:
        raise InvalidOrder("intent", "must be a dict")
    coid = validate_client_order_id(instance=instance, value=intent.get("client_order_id"))
    side, otype = intent.get("side"), intent.get("type", "market")
    if type(side) is not str or side not in OrderSide.values:
        raise InvalidOrder("side", "must be 'buy' or 'sell'")
    if type(otype) is not str or otype not in ORDER_TYPES:
        raise InvalidOrder("type", "must be 'market', 'limit', 'stop' or 'stop_limit'")
    qty = _number("qty", intent.get("qty"), maximum=MAX_QTY)
    limit_price = _price_field(intent, "price", otype in ("limit", "stop_limit"), otype)
    stop_price = _price_field(intent, "stop_price", otype in ("stop", "stop_limit"), otype)
    market = instance.market
    if market.kind == "binary":
        for name, value in (("price", limit_price), ("stop_price", stop_price)):
            if value is not None and fm.binary_price_problem(value, market.tick_size):
                raise InvalidOrder(
                    name, f"must be a probability inside 0..1 on the tick {market.tick_size.normalize()}"
                )
    options = _options(intent)
    lot = instance.market.lot_size
    if lot > 0:
        qty = (qty // lot) * lot  # floor to whole lots; never round a size up
    qty = q8(qty)
    if qty <= 0:
        raise InvalidOrder("qty", f"is below the market's lot size {lot.normalize()}")
    tag = intent.get("tag")
    if tag is not None and (type(tag) is not str or len(tag) > 64):
        raise InvalidOrder("tag", "must be a string of at most 64 characters or null")
    if tag and _UNSTORABLE.search(tag):  # PostgreSQL text cannot hold them; never rely on the sandbox
        raise InvalidOrder("tag", "must not contain NUL characters or unpaired surrogates")
    if limit_price is not None and qty * limit_price > MAX_NOTIONAL:
        raise InvalidOrder("qty", "notional is too large")
    return OrderRequest(
        client_order_id=coid,
        side=side,
        type=otype,
        qty=qty,
        limit_price=limit_price,
        tag=tag or "",
        stop_price=stop_price,
        **options,
    )


ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
OPTION_FIELDS = ("tif", "expire_at", "reduce_only", "sl", "tp")


def _price_field(intent: dict[str, Any], name: str, required: bool, otype: str) -> Decimal | None:
    raw = intent.get(name)
    if not required:
        if raw is not None:
            raise InvalidOrder(name, f"must be null for a {otype} order")
        return None
    value = q8(_number(name, raw, maximum=MAX_PRICE))
    if value <= 0:
        raise InvalidOrder(name, "must be at least 0.00000001")
    return value


def _options(intent: dict[str, Any]) -> dict[str, Any]:
    """Time in force, expiry, reduce-only and bracket legs, with the sandbox's own checks (the
    same function judged them in the host; a forged reply is judged here again)."""
    tif = intent.get("tif", "gtc")
    reduce_only = intent.get("reduce_only", False)
    sl, tp, expire_at = intent.get("sl"), intent.get("tp"), intent.get("expire_at")
    problem = order_options_problem(tif, reduce_only, sl, tp, expire_at)
    if problem is not None:
        raise InvalidOrder(problem.removeprefix("INVALID_").lower(), "is not a valid order option")
    bracket = {k: bracket_value(v) for k, v in (("sl", sl), ("tp", tp)) if v is not None}
    return {
        "tif": tif,
        "expire_at": order_number(expire_at) if expire_at is not None else None,
        "reduce_only": reduce_only,
        "bracket": bracket,
    }


def market_closed(market: Market, now: datetime) -> tuple[Deny, str] | None:
    """`(MARKET_CLOSED, message naming the next open)` when `now` is outside the market's trading
    hours or after a binary market's resolution, else None. Parsed hours are cached
    (`session_parse`); always-open markets cost a truth test."""
    if market.resolved_at is not None and now >= market.resolved_at:
        return Deny.MARKET_CLOSED, (
            f"{market.code} resolved (settled at {market.resolved_value}) on "
            f"{market.resolved_at:%Y-%m-%d %H:%M} UTC and no longer trades"
        )
    session = session_parse(market.trading_hours)
    if session is None:
        return None
    problem = session.closed_problem(now.timestamp())
    return None if problem is None else (Deny.MARKET_CLOSED, problem[1])


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def pre_trade_evaluate(
    *, instance: StrategyInstance, order_request: OrderRequest, quote: Any, now: datetime | None = None
) -> RiskDecision:
    """Run every check on trusted data; `instance.tenant` / `instance.account` must be the locked rows.

    The aggregates are read in one statement (`exposure_read`) once the checks that need none passed.
    """
    return pre_trade_decide(
        instance=instance, order_request=order_request, quote=quote, now=now, exposure=None
    )


def pre_trade_decide(
    *,
    instance: StrategyInstance,
    order_request: OrderRequest,
    quote: Any,
    now: datetime | None,
    exposure: Exposure | None,
) -> RiskDecision:
    """`pre_trade_evaluate` on `exposure` already read under the caller's locks (None: read it here).

    `order_place` reads the exposure in the same statement as the instance it re-reads under the
    tenant and account locks, so it hands both in.
    """
    now = now or timezone.now()
    tenant, account, req = instance.tenant, instance.account, order_request
    if tenant.killed_at is not None:
        return RiskDecision(Deny.KILL_SWITCH, "the tenant's kill switch is on")
    if instance.mode == Mode.OFF:
        return RiskDecision(Deny.MODE_OFF, "the instance is off")
    if instance.mode != Mode.ACTIVE:
        return RiskDecision(Deny.MODE_OBSERVE, "the instance is in observe mode: recorded as a shadow order")
    if account.kind != "paper" and not instance_live_approval_is_current(instance):
        return RiskDecision(Deny.NOT_APPROVED, "live trading needs a current staff approval")
    closed = market_closed(instance.market, now)
    if closed is not None:
        return RiskDecision(*closed)
    if not quote_is_valid(quote):
        return RiskDecision(Deny.NO_QUOTE, "no valid quote for the market")
    try:
        broker = broker_for_account(account)
    except BrokerUnavailable as exc:
        return RiskDecision(Deny.BROKER_UNAVAILABLE, str(exc))
    est = broker.estimate_price(
        side=req.side, type=req.type, limit_price=req.limit_price, quote=quote, stop_price=req.stop_price
    )
    notional = q8(req.qty * est)
    if notional > MAX_NOTIONAL:
        return RiskDecision(Deny.INVALID_ORDER, "notional is too large", est)

    market_id = instance.market_id
    if exposure is None:
        _, exposure = exposure_read(
            instance_id=instance.pk,
            tenant_id=tenant.pk,
            account_id=account.pk,
            market_id=market_id,
            side=req.side,
            now=now,
        )
    limit = max_orders_per_minute()
    if exposure.recent_orders >= limit:
        return RiskDecision(Deny.ORDER_RATE_LIMIT, f"at most {limit} orders per instance per minute", est)

    position = exposure.position
    held = position.qty if position else Decimal(0)
    if req.side == OrderSide.SELL and held >= 0:
        available = held - exposure.pending_sell_qty
        if req.qty <= available or req.reduce_only:
            return RiskDecision(None, "", est)  # reduces (or closes) the long: getting out is allowed
        if not account.allow_short:
            return RiskDecision(
                Deny.INSUFFICIENT_POSITION,
                f"long-only: sell {req.qty.normalize()} exceeds the {available.normalize()} held and not already offered",
                est,
            )
    elif req.side == OrderSide.BUY and held < 0 and (req.qty <= -held or req.reduce_only):
        return RiskDecision(None, "", est)  # covers (part of) the short
    elif req.reduce_only:
        return RiskDecision(None, "", est)  # the service cuts it to the position (or cancels it)

    mark = Decimal(str(quote["price"]))
    daily = exposure.realized_today + open_positions_unrealized_pnl(
        exposure.open_positions, {market_id: mark}
    )
    if daily < 0 and -daily >= instance.max_daily_loss:
        return RiskDecision(
            Deny.DAILY_LOSS_LIMIT,
            f"today's loss {_money(-daily)} reached max_daily_loss {instance.max_daily_loss}",
            est,
        )
    if notional > instance.capital_per_trade:
        return RiskDecision(
            Deny.CAPITAL_PER_TRADE_EXCEEDED,
            f"order notional {_money(notional)} exceeds capital_per_trade {instance.capital_per_trade}",
            est,
        )
    pending_here = exposure.pending_buy_here
    if position is None and pending_here == 0:
        open_count = len(exposure.open_positions)
        pending_other = exposure.pending_other_markets
        if open_count + pending_other >= instance.max_positions:
            return RiskDecision(
                Deny.MAX_POSITIONS_REACHED,
                f"{open_count + pending_other} of max_positions {instance.max_positions} open",
                est,
            )
    position_size = (abs(position.cost_basis) if position else Decimal(0)) + pending_here + notional
    if position_size > instance.max_position_size:
        return RiskDecision(
            Deny.MAX_POSITION_SIZE_EXCEEDED,
            f"position would be {_money(position_size)}, above max_position_size {instance.max_position_size}",
            est,
        )
    deployed = exposure.instance_deployed_capital
    if deployed + notional > instance.total_capital:
        return RiskDecision(
            Deny.INSTANCE_CAPITAL_EXHAUSTED,
            f"deployed {_money(deployed)} + {_money(notional)} exceeds total_capital {instance.total_capital}",
            est,
        )
    tenant_deployed = exposure.tenant_deployed_capital
    if tenant_deployed + notional > tenant.capital_limit:
        return RiskDecision(
            Deny.TENANT_CAPITAL_LIMIT_EXCEEDED,
            f"tenant deployed {_money(tenant_deployed)} + {_money(notional)} exceeds capital_limit {tenant.capital_limit}",
            est,
        )
    fee = broker.fee_for(notional)
    reserved = exposure.account_pending_buy
    reserved += broker.fee_for(reserved)
    leverage = Decimal(account.leverage)
    if req.side == OrderSide.BUY and held >= 0 and leverage == 1:
        if notional + fee + reserved > account.balance:
            return RiskDecision(
                Deny.INSUFFICIENT_BALANCE,
                f"needs {_money(notional + fee)} (+{_money(reserved)} reserved), balance {_money(account.balance)}",
                est,
            )
        return RiskDecision(None, "", est)
    # Shorts and leverage: the position after the fill must fit leverage x the equity (fillmodel).
    signed = req.qty if req.side == OrderSide.BUY else -req.qty
    code = fm.margin_problem(
        held, signed, est, fee + reserved, account.balance, leverage, account.allow_short
    )
    if code is not None:
        return RiskDecision(
            Deny(code),
            f"{req.qty.normalize()} at {est} needs more than {leverage.normalize()}x the equity (balance {_money(account.balance)})",
            est,
        )
    return RiskDecision(None, "", est)


def pre_trade_check(*, instance: StrategyInstance, order_request: OrderRequest, quote: Any) -> Deny | None:
    """The contract's entry point: the first deny code, or None when the order may go to the broker."""
    return pre_trade_evaluate(instance=instance, order_request=order_request, quote=quote).deny
