"""Reads for backtests. Every selector takes the tenant: another tenant's backtest is never found."""

from __future__ import annotations

from uuid import UUID

from django.db.models import Q, QuerySet

from stratbox.backtests.models import Backtest, BacktestTrade, BarDataset
from stratbox.markets.models import Market
from strategies_store.models import StrategyVersion
from tenants.models import Tenant


def backtest_list(
    *, tenant: Tenant, status: str | None = None, version_id: UUID | None = None
) -> QuerySet[Backtest]:
    qs = Backtest.objects.filter(tenant=tenant).defer("equity_curve")
    if status:
        qs = qs.filter(status=status)
    if version_id:
        qs = qs.filter(version_id=version_id)
    return qs


def _uuid(value: object) -> UUID | None:
    """The UUID `value` names, or None: a malformed id cannot exist (a 404, never a 500)."""
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None


def backtest_get(*, tenant: Tenant, backtest_id: UUID | str) -> Backtest | None:
    pk = _uuid(backtest_id)
    return Backtest.objects.filter(tenant=tenant, pk=pk).first() if pk else None


def backtest_trade_list(*, backtest: Backtest) -> QuerySet[BacktestTrade]:
    return BacktestTrade.objects.filter(backtest=backtest).order_by("seq")


def version_get_for_tenant(*, tenant: Tenant, version_id: UUID | str) -> StrategyVersion | None:
    """A version the tenant may run: its own definitions' or the catalog's."""
    pk = _uuid(version_id)
    if pk is None:
        return None
    return (
        StrategyVersion.objects.select_related("definition")
        .filter(Q(definition__tenant=tenant) | Q(definition__tenant__isnull=True), pk=pk)
        .first()
    )


def market_get(*, market: int | str) -> Market | None:
    """A market by id or by code (``SIM:BTC/USDT``). Markets are shared by all tenants."""
    if isinstance(market, int) or (isinstance(market, str) and market.isdigit()):
        return Market.objects.filter(pk=int(market)).first()
    if isinstance(market, str) and ":" in market:
        venue, symbol = market.split(":", 1)
        return Market.objects.filter(venue=venue, symbol=symbol).first()
    return None


def backtest_queue_position(*, backtest: Backtest) -> int | None:
    """1 for the next queued backtest to start on the long pool, 2 for the one after, ...; None
    unless queued. The pool is shared, so every tenant's queued runs count (as a number only)."""
    if backtest.status != "queued":
        return None
    ahead = Backtest.objects.filter(status="queued", created_at__lt=backtest.created_at).count()
    return ahead + 1


def dataset_list(*, tenant: Tenant) -> QuerySet[BarDataset]:
    """The tenant's stored bar datasets, newest first."""
    return BarDataset.objects.filter(tenant=tenant)


def dataset_get(*, tenant: Tenant, dataset_id: UUID | str) -> BarDataset | None:
    pk = _uuid(dataset_id)
    return BarDataset.objects.filter(tenant=tenant, pk=pk).first() if pk else None
