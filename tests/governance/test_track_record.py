"""Track record: hand-checked trades, win rate, P&L, drawdown, since; ledgers never mixed."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from stratbox.trading.track_record import instance_track_record, max_drawdown
from tests.governance.conftest import Trader
from tests.trading.conftest import NOW, Intents, make_instance, make_quote, place


def test_paper_record_by_hand(paper_instance):
    # base 1000 (total_capital): +100 -> 1100 (peak), -220 -> 880 (DD 220/1100 = 20 %), +50 -> 930
    Trader(paper_instance).trades([100, -220, 50])
    record = instance_track_record(instance=paper_instance)
    assert record.ledger == "paper" and not record.is_shadow
    assert (record.trades, record.wins, record.losses) == (3, 2, 1)
    assert record.win_rate.quantize(D("0.0001")) == D("66.6667")
    assert record.pnl == D("-70")
    assert record.max_drawdown == D("20") and record.max_drawdown_amount == D("220")
    assert record.since == NOW and record.last_trade_at == NOW + timedelta(days=2, minutes=1)
    assert [eq for _, eq in record.equity_curve] == [D("1000"), D("1100"), D("880"), D("930")]
    assert record.as_json()["win_rate"] == "66.67" and record.as_json()["max_drawdown"] == "20.00"
    # Nothing leaked into the shadow ledger.
    assert instance_track_record(instance=paper_instance, shadow=True).trades == 0


def test_every_sale_is_a_trade_partial_ones_included(paper_instance, market):
    i = Intents(paper_instance)
    place(paper_instance, i("buy", 10.0), make_quote(market, 100))
    place(paper_instance, i("sell", 4.0), make_quote(market, 110), now=NOW + timedelta(minutes=1))
    record = instance_track_record(instance=paper_instance)
    # A partial sale is a trade (+40) while the rest stays open: a record never stalls on a
    # position that is not flat again (a reload resets the strategy's idea of what it holds).
    assert (record.trades, record.wins, record.pnl) == (1, 1, D("40")) and record.open_position
    place(paper_instance, i("sell", 6.0), make_quote(market, 90), now=NOW + timedelta(minutes=2))
    record = instance_track_record(instance=paper_instance)
    # +40 on the first 4, -60 on the other 6 -> -20 over two trades.
    assert (record.trades, record.wins, record.losses, record.pnl) == (2, 1, 1, D("-20"))
    assert record.open_pnl is None and not record.open_position
    assert [eq for _, eq in record.equity_curve] == [D("1000"), D("1040"), D("980")]


def test_buy_fees_are_shared_out_by_quantity_sold(settings, tenant, paper_account, market):
    paper_account.fee_bps = D("10")
    paper_account.save()
    inst = make_instance(tenant, paper_account, market)
    i = Intents(inst)
    place(inst, i("buy", 10.0), make_quote(market, 100))  # fee 1.00
    place(inst, i("sell", 4.0), make_quote(market, 100), now=NOW + timedelta(minutes=1))  # fee 0.40
    record = instance_track_record(instance=inst, marks={market.pk: D("100")})
    # The sale carries its fee and 4/10 of the buy's: -0.40 - 0.40.
    assert (record.trades, record.pnl, record.fees) == (1, D("-0.8"), D("0.8"))
    # The other 0.60 of buying fees is still held by the open 6: part of open_pnl, so that
    # pnl + open_pnl is the whole ledger's P&L (every fill's realized P&L plus unrealized).
    assert record.open_pnl == D("-0.6")
    place(inst, i("sell", 6.0), make_quote(market, 100), now=NOW + timedelta(minutes=2))  # fee 0.60
    record = instance_track_record(instance=inst)
    assert (record.trades, record.pnl, record.fees) == (2, D("-2"), D("2"))


def test_fees_are_part_of_a_trades_pnl(settings, tenant, paper_account, market):
    paper_account.fee_bps = D("10")
    paper_account.save()
    inst = make_instance(tenant, paper_account, market)
    i = Intents(inst)
    place(inst, i("buy", 10.0), make_quote(market, 100))  # fee 1.00
    place(inst, i("sell", 10.0), make_quote(market, 100.15), now=NOW + timedelta(minutes=1))  # fee 1.0015
    record = instance_track_record(instance=inst)
    assert record.pnl == D("1.5") - D("1") - D("1.0015")  # a gross win, a net loss
    assert (record.wins, record.losses) == (0, 1) and record.fees == D("2.0015")


def test_shadow_record_is_separate_and_marked(tenant, paper_account, market):
    inst = make_instance(tenant, paper_account, market, mode="observe")
    Trader(inst, mode="observe").trades([30, -10])
    shadow = instance_track_record(instance=inst, shadow=True)
    assert shadow.ledger == "shadow" and shadow.is_shadow and shadow.as_json()["ledger"] == "shadow"
    assert (shadow.trades, shadow.wins, shadow.pnl) == (2, 1, D("20"))
    paper = instance_track_record(instance=inst)
    assert paper.ledger == "paper" and paper.trades == 0 and paper.pnl == 0 and paper.since is None
    paper_account.refresh_from_db()
    assert paper_account.balance == D("100000")  # shadow fills never touch cash


def test_live_ledger_is_named_live(tenant, live_account, market):
    inst = make_instance(tenant, live_account, market)
    record = instance_track_record(instance=inst)
    assert record.ledger == "live" and record.trades == 0 and record.win_rate is None


def test_max_drawdown_helper():
    assert max_drawdown([]) == (D(0), D(0))
    assert max_drawdown([D(100), D(120), D(90), D(130), D(117)]) == (D(25), D(30))
