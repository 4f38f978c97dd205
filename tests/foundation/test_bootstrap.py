"""`manage.py bootstrap_demo` (run by `make run`): markets, catalog, demo tenant and instance; idempotent."""

from django.core.management import call_command

from stratbox.instances.models import StrategyInstance
from stratbox.markets.models import Bar, Market
from stratbox.trading.models import Account
from strategies_store.models import StrategyDefinition, StrategyVersion
from tenants.models import AuditEvent, Membership


def test_bootstrap_installs_everything_once_and_the_demo_trades_on_paper(db: None) -> None:
    call_command("bootstrap_demo")
    counts = (
        Market.objects.count(),
        StrategyDefinition.objects.filter(tenant__isnull=True).count(),
        StrategyVersion.objects.count(),
        Account.objects.count(),
        StrategyInstance.objects.count(),
        AuditEvent.objects.count(),
        Bar.objects.count(),
    )
    # history to backtest against from the first minute
    assert Bar.objects.filter(market__symbol="BTC/USDT", interval_seconds=60).count() == 20_000
    assert {"sma_crossover", "mean_reversion", "breakout", "momentum_signals"} <= set(
        StrategyDefinition.objects.filter(tenant__isnull=True).values_list("key", flat=True)
    )
    demo = Membership.objects.get(user__email="demo@stratbox.local")
    instance = StrategyInstance.objects.get(tenant=demo.tenant)
    assert instance.mode == "active"
    assert instance.account.kind == "paper"
    assert (instance.strategy.key, instance.market.code) == ("sma_crossover", "SIM:BTC/USDT")

    call_command("bootstrap_demo")  # a second run changes nothing
    assert counts == (
        Market.objects.count(),
        StrategyDefinition.objects.filter(tenant__isnull=True).count(),
        StrategyVersion.objects.count(),
        Account.objects.count(),
        StrategyInstance.objects.count(),
        AuditEvent.objects.count(),
        Bar.objects.count(),
    )
