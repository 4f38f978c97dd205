"""Accounts, orders, fills and positions: the trading ledger.

Money and quantities are `Decimal` with 8 decimal places everywhere in the ledger, so that P&L is
exact: `balance == starting_balance - sum(open cost_basis) + sum(fill.realized_pnl)` holds to the
last digit for every paper account (see `brokers/paper.py` for the fill arithmetic).

Shadow orders (observe mode) are ordinary `Order` rows with `is_shadow=True` and status `shadow`
(or `rejected` with the gate's code: a shadow the gate would deny); their virtual fills land in a
separate shadow ledger (`Fill.is_shadow`, `Position.is_shadow`) and never touch the account
balance or the deployed capital.

Orders follow one model for backtest, paper and live (`sandbox.fillmodel` prices them): types
market / limit / stop / stop_limit, time in force gtc / ioc / fok / day (+ `expires_at`),
reduce-only, stop-loss / take-profit brackets (legs are child orders, one-cancels-other), partial
fills (`filled_qty`) and the statuses new -> accepted -> partially_filled -> filled | cancelled |
expired | rejected, plus unknown (sent, outcome not known: resolved by asking, never by resending).
Positions are signed: a short has a negative qty and a negative cost_basis (qty * avg_price).
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from stratbox.instances.models import StrategyInstance
from stratbox.markets.models import Market
from tenants.models import Tenant

# Ledger precision: 20 integer digits, 8 decimals (satoshi-grade quantities, sub-cent prices).
QTY_DIGITS = 28
DP = 8


def _money(**kw: object) -> models.DecimalField:
    return models.DecimalField(max_digits=QTY_DIGITS, decimal_places=DP, **kw)  # type: ignore[arg-type]


class AccountKind(models.TextChoices):
    PAPER = "paper", "Paper (simulated broker)"
    LIVE = "live", "Live (exchange/broker adapter)"


class FillTiming(models.TextChoices):
    SIGNAL_CLOSE = "signal_close", "At the signal bar's close"
    NEXT_OPEN = "next_open", "At the next bar's open"


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="accounts")
    name = models.CharField(max_length=80)
    kind = models.CharField(max_length=8, choices=AccountKind.choices, default=AccountKind.PAPER)
    currency = models.CharField(max_length=8, default="USD")
    starting_balance = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("100000.00"))
    # Cash balance, moved only by the broker when fills happen (8 decimals: fees are fractions of a cent).
    balance = models.DecimalField(max_digits=QTY_DIGITS, decimal_places=DP, default=Decimal("100000.00"))
    # Paper fill model; NULL = the global default (settings.STRATBOX_PAPER_SLIPPAGE_BPS / _FEE_BPS).
    slippage_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    fee_bps = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    # Live accounts: which exchange/broker adapter (e.g. "ccxt:binance") and its credentials,
    # Fernet-encrypted (see `credentials.py`). Write-only: the API shows `has_credentials` and the hint.
    broker = models.CharField(max_length=40, blank=True)
    credentials_ciphertext = models.TextField(blank=True, editable=False)
    credentials_hint = models.CharField(max_length=200, blank=True, editable=False)
    credentials_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Fill model and margin per account: `fill_timing` signal_close | next_open, a fixed fee per
    # order fill, the leverage limit (1: no order the account cannot pay for), shorting allowed.
    fill_timing = models.CharField(max_length=12, choices=FillTiming.choices, default=FillTiming.SIGNAL_CLOSE)
    fee_fixed = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    leverage = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("1"))
    allow_short = models.BooleanField(default=False)
    # Paper partial fills when quotes carry no book sizes: one order fills at most this fraction of
    # a quote's volume per quote (as a backtest's `max_volume_fraction` does per bar). NULL: no
    # cap, every fill whole (the default). A quote with `bid_size` / `ask_size` is capped by those.
    max_volume_fraction = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(Decimal("1"))],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="uniq_account_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_ciphertext)


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"
    STOP_LIMIT = "stop_limit", "Stop-limit"
    SETTLEMENT = "settlement", "Settlement (a resolved binary market)"


class TimeInForce(models.TextChoices):
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"
    DAY = "day", "Day"


class OrderStatus(models.TextChoices):
    NEW = "new", "New (stored, not yet accepted)"
    ACCEPTED = "accepted", "Accepted (resting)"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    REJECTED = "rejected", "Rejected (denied by the risk gate)"
    UNKNOWN = "unknown", "Unknown (sent, outcome not yet known)"
    SHADOW = "shadow", "Shadow (observe mode, never sent)"


# Orders that may still fill (the statuses the gate reserves capital for).
OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN)


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="orders")
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="orders")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="orders")
    # "<instance uuid>-<tick seq>-<n>": deterministic per tick, so a retried tick finds its order.
    client_order_id = models.CharField(max_length=128, unique=True)
    # Provenance: the strategy version the instance ran when it placed the order (upgrades move it).
    version = models.ForeignKey(
        "strategies_store.StrategyVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    type = models.CharField(max_length=12, choices=OrderType.choices)
    qty = _money()
    limit_price = _money(null=True, blank=True)
    stop_price = _money(null=True, blank=True)
    triggered = models.BooleanField(default=False)  # a stop-limit whose stop was hit: now a limit
    tif = models.CharField(max_length=4, choices=TimeInForce.choices, default=TimeInForce.GTC)
    expires_at = models.DateTimeField(null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    # Brackets: the parent's legs to attach once it fills ({"sl": price | "n%", "tp": ...}); a leg
    # points at its parent and says which leg it is (its sibling is the other leg: OCO).
    bracket = models.JSONField(default=dict, blank=True)
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="legs")
    leg = models.CharField(max_length=2, blank=True)
    filled_qty = _money(default=Decimal("0"))
    venue_order_id = models.CharField(max_length=128, blank=True)
    # Live orders: when a worker claimed the journaled order for its one send to the venue (NULL:
    # never sent, so the venue cannot hold it; set: only asking the venue can tell).
    sent_at = models.DateTimeField(null=True, blank=True)
    # The id the venue knows the order by: our client_order_id, or a digest of it where the venue
    # allows fewer characters (Binance: 36); set when the order is claimed for its send.
    venue_client_order_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=OrderStatus.choices)
    deny_code = models.CharField(max_length=40, blank=True)
    deny_reason = models.CharField(max_length=300, blank=True)
    is_shadow = models.BooleanField(default=False)
    tag = models.CharField(max_length=64, blank=True)
    # Price estimate the risk gate used (limit price, or the quote side plus slippage).
    est_price = _money(null=True, blank=True)
    fill_price = _money(null=True, blank=True)
    fee = _money(default=Decimal("0"))
    created_at = models.DateTimeField()
    filled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["instance", "-created_at"]),
            models.Index(
                fields=["market", "status"], condition=Q(filled_at__isnull=True), name="order_resting"
            ),
            models.Index(
                fields=["account", "venue_client_order_id"],
                condition=~Q(venue_client_order_id=""),
                name="order_venue_client_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.qty} {self.status}"


class Fill(models.Model):
    id = models.BigAutoField(primary_key=True)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    # Denormalised from the order so that ledgers and daily P&L are one indexed query.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="fills")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fills")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    position = models.ForeignKey("Position", on_delete=models.PROTECT, related_name="fills")
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    qty = _money()
    price = _money()
    fee = _money(default=Decimal("0"))
    # Gross P&L realised by this fill minus its fee (a buy realises -fee).
    realized_pnl = _money(default=Decimal("0"))
    is_shadow = models.BooleanField(default=False)
    ts = models.DateTimeField()

    class Meta:
        ordering = ["-ts", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-ts"]),
            models.Index(fields=["instance", "is_shadow", "ts"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.qty} @ {self.price}"


class Position(models.Model):
    """A position of one instance in one market: qty > 0 long, qty < 0 short (where the account
    allows shorting); cost_basis carries the same sign (qty * avg_price)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="positions")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+")
    is_shadow = models.BooleanField(default=False)
    qty = _money(default=Decimal("0"))
    # Cash paid for the open quantity (fees excluded: they are realised at each fill). This is the
    # instance's deployed capital; avg_price = cost_basis / qty.
    cost_basis = _money(default=Decimal("0"))
    avg_price = _money(default=Decimal("0"))
    realized_pnl = _money(default=Decimal("0"))
    fees = _money(default=Decimal("0"))
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "market", "is_shadow"],
                condition=Q(closed_at__isnull=True),
                name="uniq_open_position",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "is_shadow"], condition=Q(closed_at__isnull=True), name="position_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.qty} @ {self.avg_price}{' (shadow)' if self.is_shadow else ''}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
