"""Parity: a strategy run live on the replay feed and backtested over the same bars trades the same.

One fixed set of bars (integer arithmetic, so identical on every machine) is imported with
`bars_import` into a market whose feed is `replay`. The SAME version + config is then run twice:

* live: an ACTIVE instance on a paper account, driven deterministically in-process — `feed_step`
  publishes the next bar's quote, then `engine.ticks.tick.tick_run` runs that instance's tick in a
  real sandbox host; intents go through `trading.services.order_place` (risk gate + paper broker);
* backtest: `backtest_create(instance=...)` ("reuse instance config": same version, config,
  capital and the paper account's slippage/fee) over the same stored bars, run by the real runner
  in a real sandbox host (several chunks).

The canonical convention both paths follow (docs/backtests.md, "Live and backtest parity"):
a replayed bar is the tick price = bid = ask = close with the bar's open/high/low/close/volume; a
market order fills on the bar it is placed at close × (1 ± slippage_bps/10⁴); the fee is
fee_bps/10⁴ of the notional; a trade's P&L is net of its entry and exit fees.

Compared per closed trade, in order: side, qty, entry and exit bar, entry and exit price, fees,
net P&L and the closing order's tag; then the open position and the final equity (to the cent).
The ledger keeps exact 8-decimal Decimals while the backtest computes in float64, so prices must
agree at the ledger's 8 decimals and fees / P&L within 1e-7 (per-fill fee rounding to 8 decimals).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stratbox.backtests.models import BacktestTrade
from stratbox.backtests.runner import backtest_run
from stratbox.backtests.services import BarsSpec, backtest_create
from stratbox.engine import runtime, sandboxes
from stratbox.engine.dispatcher import markets_mark_to_market
from stratbox.engine.reconciler import reconcile
from stratbox.engine.ticks.tick import tick_run
from stratbox.markets.feeds import FeedRegistry, feed_step
from stratbox.markets.models import Market
from stratbox.markets.quotes import quote_get
from stratbox.markets.services import bars_import_text
from stratbox.trading.brokers.base import q8
from stratbox.trading.models import Account, Fill, Order, Position

pytestmark = pytest.mark.django_db(transaction=True)  # the backtest runner reads bars on a thread

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
INTERVAL = 60
N_BARS = 122
CAPITAL = Decimal("100000.00")
QTY = 2.5
CONFIG = {"fast": 4, "slow": 9, "qty": QTY}

# Position-aware SMA crossover: it decides from the platform's view of its position (the trusted
# snapshot live, the backtest broker in a backtest), so a fill or a position that differs between
# the two paths changes what it does next. Every tick is logged so the live ticks can be compared
# field by field with the Tick the backtest loop builds for the same bar.
SOURCE = """
from sandbox.sdk import Strategy


class SmaParity(Strategy):
    CONFIG_SCHEMA = {
        "fast": {"type": "int", "default": 4, "min": 1, "max": 100},
        "slow": {"type": "int", "default": 9, "min": 2, "max": 200},
        "qty": {"type": "float", "default": 1.0, "min": 0.001, "max": 1000},
    }

    def init(self):
        return {"closes": [], "prev": None}

    def on_tick(self, tick):
        self.context.log(
            "tick|" + tick.market + "|" + "|".join(
                repr(v) for v in (tick.ts, tick.price, tick.bid, tick.ask, tick.volume,
                                  tick.open, tick.high, tick.low, tick.close)
            )
        )
        st = self.state
        closes = st["closes"]
        closes.append(tick.close)
        slow = self.config["slow"]
        fast = self.config["fast"]
        if len(closes) > slow:
            closes.pop(0)
        if len(closes) < slow:
            return
        diff = sum(closes[-fast:]) / fast - sum(closes) / slow
        prev = st["prev"]
        st["prev"] = diff
        if prev is None:
            return
        pos = self.context.get_position()
        held = pos["qty"] if pos else 0.0
        if prev <= 0 < diff and held == 0:
            self.context.place_order("buy", self.config["qty"], tag="golden cross")
        elif prev >= 0 > diff and held > 0:
            self.context.place_order("sell", held, tag="death cross")
"""

# The same crossovers traded with limit orders: the entry rests 0.10 below the close (it fills on a
# later bar whose close reaches it, at exactly its limit), the exit is marketable on arrival (it
# fills at once at the close minus slippage, never below its limit).
LIMIT_SOURCE = (
    SOURCE.replace("class SmaParity", "class SmaLimitParity")
    .replace('return {"closes": [], "prev": None}', 'return {"closes": [], "prev": None, "waiting": False}')
    .replace(
        """        if prev <= 0 < diff and held == 0:
            self.context.place_order("buy", self.config["qty"], tag="golden cross")
        elif prev >= 0 > diff and held > 0:
            self.context.place_order("sell", held, tag="death cross")""",
        """        if held > 0:
            st["waiting"] = False
        if prev <= 0 < diff and held == 0 and not st["waiting"]:
            price = round(tick.close - 0.1, 2)
            self.context.place_order("buy", self.config["qty"], type="limit", price=price, tag="golden cross")
            st["waiting"] = True
        elif prev >= 0 > diff and held > 0:
            price = round(tick.close - 0.5, 2)
            self.context.place_order("sell", held, type="limit", price=price, tag="death cross")""",
    )
)

# The crossovers traded with the order model: each entry carries a stop-loss 0.30 below and a
# take-profit 1.50 above the signal close (OCO legs, live after the entry fills), and a far limit buy
# that never fills is placed with it and cancelled on the next bar; a death cross closes whatever
# is left with close_position() (the legs then die with the position).
BRACKET_SOURCE = (
    SOURCE.replace("class SmaParity", "class SmaBracketParity")
    .replace('return {"closes": [], "prev": None}', 'return {"closes": [], "prev": None, "cancel": None}')
    .replace(
        """        st = self.state
        closes = st["closes"]""",
        """        st = self.state
        if st["cancel"]:
            self.context.log("cancel|" + repr(self.context.cancel_order(st["cancel"])))
            st["cancel"] = None
        closes = st["closes"]""",
    )
    .replace(
        """        if prev <= 0 < diff and held == 0:
            self.context.place_order("buy", self.config["qty"], tag="golden cross")
        elif prev >= 0 > diff and held > 0:
            self.context.place_order("sell", held, tag="death cross")""",
        """        if prev <= 0 < diff and held == 0:
            c = tick.close
            self.context.place_order(
                "buy", self.config["qty"], tag="golden cross", sl=round(c - 0.3, 2), tp=round(c + 1.5, 2)
            )
            far = self.context.place_order("buy", self.config["qty"], type="limit", price=round(c - 20, 2))
            st["cancel"] = far.client_order_id
        elif prev >= 0 > diff and held > 0:
            self.context.close_position(tag="death cross")""",
    )
)

SCHEMA = {
    "fast": {"type": "int", "default": 4, "min": 1, "max": 100},
    "slow": {"type": "int", "default": 9, "min": 2, "max": 200},
    "qty": {"type": "float", "default": 1.0, "min": 0.001, "max": 1000},
}


def bar_rows() -> list[tuple[int, str, str, str, str, str]]:
    """122 one-minute bars: a triangle wave with jitter and a slight uptrend, in cents: six round
    trips (winners and losers) and a position still open at the end.

    Integer arithmetic only: the same bars, to the cent, on every machine."""
    rows = []
    prev = 10_000
    for i in range(N_BARS):
        phase = i % 16
        swing = 45 * phase if phase < 8 else 45 * (16 - phase)  # a 16-bar triangle wave of 3.60
        jitter = 60 * ((i * 7) % 5) - 74 + 20 * ((i * 3) % 4)
        close = 10_000 + swing + jitter + 4 * i
        high, low = max(prev, close) + 25, min(prev, close) - 25
        rows.append(
            (T0 + INTERVAL * i, *(f"{c / 100:.2f}" for c in (prev, high, low, close)), str(10 + i % 5))
        )
        prev = close
    return rows


def csv_text() -> str:
    return "ts,open,high,low,close,volume\n" + "".join(",".join(map(str, r)) + "\n" for r in bar_rows())


@pytest.fixture
def replay_market() -> Market:
    market = Market.objects.create(
        venue="REPLAY",
        symbol="PAR/USD",
        feed="replay",
        replay_interval_seconds=INTERVAL,
        tick_size=Decimal("0.01"),
        lot_size=Decimal("0.001"),
        sim_start_price=Decimal("100"),
    )
    result = bars_import_text(market=market, text=csv_text(), interval_seconds=INTERVAL)
    assert result.imported == N_BARS and not result.errors
    return market


def make_version(tenant: Any, key: str, source: str) -> Any:
    from sandbox import validate_source
    from strategies_store.models import StrategyDefinition, StrategyVersion

    report = validate_source(source)
    assert report.ok, report.errors
    assert report.config_schema == SCHEMA
    definition = StrategyDefinition.objects.create(tenant=tenant, key=key, name=key, style="tick")
    return StrategyVersion.objects.create(
        definition=definition,
        number=1,
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        config_schema=SCHEMA,
    )


@pytest.fixture
def parity_version(tenant: Any) -> Any:
    return make_version(tenant, "sma-parity", SOURCE)


@pytest.fixture(autouse=True)
def _fresh_engine_host_cache() -> Any:
    """Redis is flushed between tests; the engine's in-process host cache must not outlive it."""
    sandboxes._held.clear()
    yield
    sandboxes._held.clear()


def make_active_instance(tenant: Any, version: Any, market: Market, *, slippage: str, fee: str) -> Any:
    """An ACTIVE instance on its own paper account, with limits no order of this test can reach."""
    from stratbox.instances.models import StrategyInstance

    tenant.capital_limit = CAPITAL * 10
    tenant.save(update_fields=["capital_limit"])
    account = Account.objects.create(
        tenant=tenant,
        name=f"parity-{uuid.uuid4().hex[:6]}",
        kind="paper",
        starting_balance=CAPITAL,
        balance=CAPITAL,
        slippage_bps=Decimal(slippage),
        fee_bps=Decimal(fee),
    )
    return StrategyInstance.objects.create(
        tenant=tenant,
        name="parity",
        strategy=version.definition,
        version=version,
        account=account,
        market=market,
        config=dict(CONFIG),
        total_capital=CAPITAL,
        capital_per_trade=CAPITAL,
        max_positions=5,
        max_position_size=CAPITAL,
        max_daily_loss=CAPITAL,
        frequency_seconds=1,
        mode="active",
    )


def expected_backtest_tick(market: Market, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The Tick `sandbox.backtest._tick_loop` builds for a bar: price = bid = ask = close."""
    ts, o, h, low, c, v = row
    close = float(c)
    return (market.code, float(ts), close, close, close, float(v), float(o), float(h), float(low), close)


def parse_tick_log(msg: str) -> tuple[Any, ...]:
    _, market, *values = msg.split("|")
    return (market, *map(float, values))


def run_live(instance: Any, market: Market) -> dict[str, Any]:
    """Drive the instance bar by bar, in the engine's order: publish the bar's quote, fill the resting
    limit orders it crosses (the dispatcher's mark-to-market), then run the instance's tick."""
    reconcile([instance.pk])
    iid = str(instance.pk)
    rt = runtime.rt_get(iid)
    assert rt and rt["loaded"] and not rt["paused"]
    first_slot = int(rt["next_due_at"])
    registry = FeedRegistry()
    bar_of_fill: dict[int, float] = {}
    ticks: list[tuple[Any, ...]] = []
    actions: list[dict[str, Any]] = []
    for k, row in enumerate(bar_rows()):
        feed_step(time.time(), registry=registry)
        quote = quote_get(market.pk)
        assert quote is not None and quote["bar_ts"] == float(row[0])
        markets_mark_to_market()
        outcome = tick_run(iid, first_slot + k)
        assert outcome.status == "ok", (k, outcome.status, outcome.error)
        ticks += [parse_tick_log(line["msg"]) for line in outcome.logs if line["msg"].startswith("tick|")]
        actions += outcome.actions
        # A fill belongs to the bar whose step booked it (a resting limit fills on a later bar).
        for fill_id in Fill.objects.filter(instance=instance).values_list("pk", flat=True):
            bar_of_fill.setdefault(fill_id, float(row[0]))
    return {"bar_of_fill": bar_of_fill, "ticks": ticks, "actions": actions}


def live_trades(
    instance: Any, bar_of_fill: dict[int, float]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Round trips from the real ledger: one Position per trade (long only), its fills in order."""
    closed, still_open = [], []
    for pos in Position.objects.filter(instance=instance, is_shadow=False).order_by("opened_at"):
        fills = list(pos.fills.select_related("order").order_by("id"))
        buys = [f for f in fills if f.side == "buy"]
        sells = [f for f in fills if f.side == "sell"]
        assert len(buys) == 1 and len(sells) <= 1, "the strategy opens and closes in one order each"
        entry = buys[0]
        trade = {
            "side": "long",
            "qty": entry.qty,
            "entry_ts": bar_of_fill[entry.pk],
            "entry_price": entry.price,
            "fees": pos.fees,
        }
        if sells:
            exit_ = sells[0]
            assert pos.closed_at is not None and pos.qty == 0
            trade |= {
                "exit_ts": bar_of_fill[exit_.pk],
                "exit_price": exit_.price,
                "pnl": pos.realized_pnl,
                "reason": exit_.order.tag,
            }
            closed.append(trade)
        else:
            still_open.append(trade)
    return closed, still_open


def run_backtest(instance: Any, tenant: Any, market: Market) -> Any:
    rows = bar_rows()
    bt = backtest_create(
        tenant=tenant,
        actor=None,
        bars=BarsSpec(
            market=market,
            start=datetime.fromtimestamp(rows[0][0], tz=UTC),
            end=datetime.fromtimestamp(rows[-1][0], tz=UTC) + timedelta(seconds=INTERVAL),
            interval_seconds=INTERVAL,
        ),
        instance=instance,  # "reuse instance config": its version, config, capital and fill params
        chunk_bars=37,  # four chunks: trades and the open position cross chunk edges
    )
    assert backtest_run(str(bt.pk)) == "succeeded"
    bt.refresh_from_db()
    assert bt.status == "succeeded", (bt.error_code, bt.error_message)
    return bt


def dec(value: float) -> Decimal:
    return Decimal(repr(value))


# Fees and P&L: the ledger rounds each fill's notional, fee and removed cost to 8 decimals; the
# backtest does not round. A few units of the 8th decimal per trade, never a cent.
LEDGER_TOL = Decimal("3e-8")


def assert_parity(
    instance: Any,
    tenant: Any,
    market: Market,
    *,
    slippage: str,
    fee: str,
    kinds: tuple[str, ...] = ("order",),
) -> dict[str, Any]:
    """Run `instance` live over the replayed bars, then backtest it; assert identical trading."""
    live = run_live(instance, market)

    # Every order passed the risk gate: nothing denied, nothing shadowed.
    assert live["actions"], "the bars must produce crossovers"
    assert all(a["kind"] in kinds and a["deny_code"] is None for a in live["actions"]), live["actions"]

    # Tick parity: the live strategy saw, bar by bar, the fields the backtest's Tick carries — except
    # ts (see test_replayed_tick_carries_the_bar_timestamp): live it is the quote's publish time.
    rows = bar_rows()
    assert len(live["ticks"]) == len(rows)
    for got, row in zip(live["ticks"], rows, strict=True):
        want = expected_backtest_tick(market, row)
        assert got[:1] + got[2:] == want[:1] + want[2:]

    bt = run_backtest(instance, tenant, market)
    assert bt.broker_params["slippage_bps"] == float(slippage) and bt.broker_params["fee_bps"] == float(fee)
    assert bt.config == CONFIG and bt.version_id == instance.version_id
    assert bt.bars_total == N_BARS and bt.starting_capital == CAPITAL

    closed, still_open = live_trades(instance, live["bar_of_fill"])
    bt_trades = list(BacktestTrade.objects.filter(backtest=bt).order_by("seq"))
    bt_closed = [t for t in bt_trades if t.exit_ts is not None]
    bt_open = [t for t in bt_trades if t.exit_ts is None]
    assert len(closed) == len(bt_closed) == bt.num_trades
    assert len(still_open) == len(bt_open) == bt.metrics["open_trades"]

    for n, (lt, t) in enumerate(zip(closed, bt_closed, strict=True)):
        where = f"trade {n + 1}"
        assert (t.side, dec(t.qty)) == (lt["side"], lt["qty"]), where
        assert (t.entry_ts, t.exit_ts) == (lt["entry_ts"], lt["exit_ts"]), where  # same bars
        assert q8(dec(t.entry_price)) == lt["entry_price"], where
        assert q8(dec(t.exit_price)) == lt["exit_price"], where
        assert abs(dec(t.fees) - lt["fees"]) <= LEDGER_TOL, (where, t.fees, lt["fees"])
        assert abs(dec(t.pnl) - lt["pnl"]) <= LEDGER_TOL, (where, t.pnl, lt["pnl"])
        assert t.reason == lt["reason"], where
        if fee == "0":
            assert lt["fees"] == 0 and t.fees == 0
    for lt, t in zip(still_open, bt_open, strict=True):
        assert (t.side, dec(t.qty), t.entry_ts) == (lt["side"], lt["qty"], lt["entry_ts"])
        assert q8(dec(t.entry_price)) == lt["entry_price"]

    # Final equity: the paper account's cash plus the open position at the last close.
    instance.account.refresh_from_db()
    last_close = Decimal(rows[-1][4])
    held = sum(
        (p.qty for p in Position.objects.filter(instance=instance, closed_at__isnull=True)), Decimal(0)
    )
    live_equity = instance.account.balance + held * last_close
    assert live_equity.quantize(Decimal("0.01")) == bt.final_equity, (live_equity, bt.final_equity)
    assert abs(dec(bt.metrics["final_equity"]) - live_equity) <= Decimal("1e-6")
    realized = sum((lt["pnl"] for lt in closed), Decimal(0))
    assert abs(dec(sum(t.pnl for t in bt_closed)) - realized) <= Decimal("1e-6")
    # Same fills, one for one (entries, exits, bracket legs), and no denial on either side.
    assert bt.metrics["fills"] == Fill.objects.filter(instance=instance).count()
    assert bt.metrics["denial_counts"] == {}
    return {"closed": closed, "open": still_open, "backtest": bt, "actions": live["actions"]}


@pytest.mark.parametrize(
    ("slippage", "fee"),
    [("0", "0"), ("5", "10"), ("7.5", "12.5")],
    ids=["no-costs", "slip5-fee10", "slip7.5-fee12.5"],
)
def test_live_replay_and_backtest_trade_identically(
    celery_queue: str, tenant: Any, replay_market: Market, parity_version: Any, slippage: str, fee: str
) -> None:
    instance = make_active_instance(tenant, parity_version, replay_market, slippage=slippage, fee=fee)
    result = assert_parity(instance, tenant, replay_market, slippage=slippage, fee=fee)
    closed = result["closed"]
    assert len(closed) == 6 and len(result["open"]) == 1, "the fixture's crossovers changed"
    assert min(lt["pnl"] for lt in closed) < 0 < max(lt["pnl"] for lt in closed)
    assert {a["status"] for a in result["actions"]} == {"filled"}  # market orders fill on their bar
    if slippage == "0":  # no slippage: every fill is exactly its bar's close
        closes = {float(r[0]): Decimal(r[4]) for r in bar_rows()}
        assert all(lt["entry_price"] == closes[lt["entry_ts"]] for lt in closed)
        assert all(lt["exit_price"] == closes[lt["exit_ts"]] for lt in closed)


def test_limit_orders_fill_identically_live_and_in_backtest(
    celery_queue: str, tenant: Any, replay_market: Market
) -> None:
    """Resting limit buys (filled on a later bar at the limit) and marketable limit sells."""
    version = make_version(tenant, "sma-limit-parity", LIMIT_SOURCE)
    instance = make_active_instance(tenant, version, replay_market, slippage="5", fee="10")
    result = assert_parity(instance, tenant, replay_market, slippage="5", fee="10")
    closed = result["closed"]
    assert len(closed) >= 3
    # The buys rested (placed at one bar, filled at a later one at exactly their limit) ...
    assert {a["status"] for a in result["actions"] if a["side"] == "buy"} == {"accepted"}
    assert all(lt["entry_price"] == lt["entry_price"].quantize(Decimal("0.01")) for lt in closed)
    # ... the sells filled at once at the close minus 5 bp (above their limit).
    closes = {float(r[0]): Decimal(r[4]) for r in bar_rows()}
    assert all(lt["exit_price"] == q8(closes[lt["exit_ts"]] * Decimal("0.9995")) for lt in closed)


def test_brackets_and_a_cancelled_limit_run_identically_live_and_in_backtest(
    celery_queue: str, tenant: Any, replay_market: Market
) -> None:
    """Stop-loss / take-profit legs (OCO, dying with their position) and a limit cancelled by the
    strategy: the paper instance and the backtest of the same instance place, fill and cancel alike."""
    version = make_version(tenant, "sma-bracket-parity", BRACKET_SOURCE)
    instance = make_active_instance(tenant, version, replay_market, slippage="5", fee="10")
    result = assert_parity(instance, tenant, replay_market, slippage="5", fee="10", kinds=("order", "cancel"))
    reasons = [lt["reason"] for lt in result["closed"]]
    assert {"sl", "tp"} <= set(reasons), reasons  # both legs closed some trade
    # Every far limit was cancelled by the strategy on the next bar, and none ever filled.
    entries = [o for o in Order.objects.filter(instance=instance, type="limit", parent__isnull=True)]
    cancels = [a for a in result["actions"] if a["kind"] == "cancel"]
    assert entries and len(cancels) == len(entries)
    assert {a["status"] for a in cancels} == {"cancelled"}
    assert {o.status for o in entries} == {"cancelled"}
    # The legs of each entry: one filled and its sibling cancelled, or both gone with the position.
    for parent in Order.objects.filter(instance=instance, tag="golden cross"):
        legs = sorted(Order.objects.filter(parent=parent).values_list("status", flat=True))
        assert legs in (["cancelled", "filled"], ["cancelled", "cancelled"], ["accepted", "accepted"]), legs


def test_replayed_bar_quote_is_the_close(replay_market: Market) -> None:
    """The replay feed publishes each bar as price = bid = ask = close (no invented spread)."""
    registry = FeedRegistry()
    for row in bar_rows()[:3]:
        quote = next(
            q for q in feed_step(T0 + 10_000.0, registry=registry) if q["market_id"] == replay_market.pk
        )
        close = float(row[4])
        assert (quote["price"], quote["bid"], quote["ask"], quote["close"]) == (close, close, close, close)
        assert (quote["open"], quote["high"], quote["low"]) == tuple(map(float, row[1:4]))
        assert quote["bar_ts"] == float(row[0]) and quote["volume"] == float(row[5])
        assert quote_get(replay_market.pk) == quote


def test_replayed_tick_carries_the_bar_timestamp(
    tenant: Any, replay_market: Market, parity_version: Any
) -> None:
    instance = make_active_instance(tenant, parity_version, replay_market, slippage="0", fee="0")
    reconcile([instance.pk])
    slot = int(runtime.rt_get(str(instance.pk))["next_due_at"])
    feed_step(time.time(), registry=FeedRegistry())
    outcome = tick_run(str(instance.pk), slot)
    assert outcome.status == "ok"
    (tick,) = [parse_tick_log(line["msg"]) for line in outcome.logs if line["msg"].startswith("tick|")]
    assert tick == expected_backtest_tick(replay_market, bar_rows()[0])


def test_partial_fills_run_identically_live_and_in_backtest(
    celery_queue: str, tenant: Any, replay_market: Market, parity_version: Any
) -> None:
    """The account fills one order with at most 20 % of a bar's volume (10..14 here: 2.0..2.8 of the
    2.5 ordered), so entries and exits on bars of volume 10..12 fill over two bars — on arrival
    against the signal bar, the rest at the next bar's open — and the strategy, deciding from its
    position, sees partial positions. The backtest of the instance inherits the fraction and fills
    alike."""
    instance = make_active_instance(tenant, parity_version, replay_market, slippage="5", fee="0")
    Account.objects.filter(pk=instance.account_id).update(max_volume_fraction=Decimal("0.2"))
    instance.refresh_from_db()
    live = run_live(instance, replay_market)
    assert live["actions"] and all(a["deny_code"] is None for a in live["actions"]), live["actions"]
    bt = run_backtest(instance, tenant, replay_market)
    assert bt.broker_params["max_volume_fraction"] == 0.2

    fills = list(Fill.objects.filter(instance=instance).order_by("id"))
    assert bt.metrics["fills"] == len(fills) and bt.metrics["denial_counts"] == {}
    orders = Order.objects.filter(instance=instance)
    assert max(o.fills.count() for o in orders) >= 2  # orders did fill in parts
    volume = {float(r[0]): Decimal(r[5]) for r in bar_rows()}
    for f in fills:  # never more than 20 % of its bar's volume
        assert f.qty <= volume[live["bar_of_fill"][f.pk]] / 5
    # Every closing fill is one backtest trade: same bar, quantity, price and P&L (no fees).
    sells = [f for f in fills if f.side == "sell"]
    bt_closed = list(BacktestTrade.objects.filter(backtest=bt, exit_ts__isnull=False).order_by("seq"))
    assert len(sells) == len(bt_closed) >= 3
    for n, (f, t) in enumerate(zip(sells, bt_closed, strict=True)):
        where = f"closing fill {n + 1}"
        assert (q8(dec(t.qty)), t.exit_ts) == (f.qty, live["bar_of_fill"][f.pk]), where
        assert q8(dec(t.exit_price)) == f.price, where
        assert abs(dec(t.pnl) - f.realized_pnl) <= LEDGER_TOL, (where, t.pnl, f.realized_pnl)
    instance.account.refresh_from_db()
    held = sum(
        (p.qty for p in Position.objects.filter(instance=instance, closed_at__isnull=True)), Decimal(0)
    )
    live_equity = instance.account.balance + held * Decimal(bar_rows()[-1][4])
    assert abs(dec(bt.metrics["final_equity"]) - live_equity) <= Decimal("1e-6")
