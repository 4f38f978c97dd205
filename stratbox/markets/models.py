"""Markets (venue + symbol) and stored OHLCV bars."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models

from sandbox.sessions import hours_problem


class FeedSource(models.TextChoices):
    SIMULATED = "simulated", "Simulated (seeded random walk)"
    REPLAY = "replay", "Replay of stored bars"
    VENUE = "venue", "The venue's own quotes (stream, or REST polling)"


class MarketKind(models.TextChoices):
    SPOT = "spot", "Spot / equity"
    BINARY = "binary", "Binary outcome contract (price 0..1, settles at 1 or 0)"


class Market(models.Model):
    """A tradable market. Markets are shared by all tenants (they hold no tenant data)."""

    venue = models.CharField(max_length=32, help_text="e.g. SIM, BINANCE, ALPACA, KALSHI")
    symbol = models.CharField(max_length=64, help_text="e.g. BTC/USDT")
    tick_size = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0.01"))
    lot_size = models.DecimalField(max_digits=20, decimal_places=10, default=Decimal("0.0001"))
    # Simulated feed parameters (seeded random walk), used when no live or replay source is attached.
    sim_start_price = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal("100"))
    sim_volatility = models.FloatField(default=0.001, help_text="per-tick standard deviation of log returns")
    active = models.BooleanField(default=True)
    # From the venue's catalogue (stratbox/venues/catalogue.py); empty for simulated markets.
    name = models.CharField(max_length=200, blank=True)
    venue_symbol = models.CharField(max_length=64, blank=True, help_text="the venue's own id, e.g. BTCUSDT")
    status = models.CharField(
        max_length=16, default="active", help_text="active | halted (as the venue says)"
    )
    catalogue_synced_at = models.DateTimeField(null=True, blank=True)
    # Which source `manage.py run_feed` uses for this market's quotes.
    feed = models.CharField(max_length=10, choices=FeedSource.choices, default=FeedSource.SIMULATED)
    # The bar interval replayed when `feed` is replay (bars of other intervals are ignored).
    replay_interval_seconds = models.PositiveIntegerField(default=60)
    # What is traded: spot/equity, or one outcome (YES or NO) of a binary event whose price is a
    # probability in 0..1 on `tick_size` and which settles at 1 or 0 (`resolved_value`).
    kind = models.CharField(max_length=8, choices=MarketKind.choices, default=MarketKind.SPOT)
    outcome = models.CharField(max_length=3, blank=True, help_text="YES or NO for a binary contract")
    # Trading hours: {"tz": "America/New_York", "open": "09:30", "close": "16:00", "days": [0, 1, 2, 3, 4]};
    # empty: always open. Enforced by `sandbox.sessions` (orders outside are denied MARKET_CLOSED,
    # nothing fills outside); DAY orders expire at the session's close (UTC midnight when always open).
    trading_hours = models.JSONField(default=dict, blank=True)
    resolved_value = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["venue", "symbol"]
        constraints = [models.UniqueConstraint(fields=["venue", "symbol"], name="uniq_market")]

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}"

    @property
    def code(self) -> str:
        return f"{self.venue}:{self.symbol}"

    def clean(self) -> None:
        problem = hours_problem(self.trading_hours)
        if problem is not None:  # unreadable hours would keep the market closed for good
            raise ValidationError({"trading_hours": problem})


class Bar(models.Model):
    """One OHLCV bar of stored history (for the replay feed and backtests)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="bars")
    ts = models.DateTimeField()
    interval_seconds = models.PositiveIntegerField(default=60)
    open = models.DecimalField(max_digits=20, decimal_places=8)
    high = models.DecimalField(max_digits=20, decimal_places=8)
    low = models.DecimalField(max_digits=20, decimal_places=8)
    close = models.DecimalField(max_digits=20, decimal_places=8)
    volume = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal("0"))

    class Meta:
        ordering = ["market", "ts"]
        constraints = [
            models.UniqueConstraint(fields=["market", "interval_seconds", "ts"], name="uniq_bar"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.ts:%Y-%m-%d %H:%M} c={self.close}"
