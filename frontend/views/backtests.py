"""Backtest pages: the form (a version or an instance's config; stored bars or a CSV), the list,
a result page with live progress (`ws/backtests/<uuid>/`), metrics, the equity curve with a marker
per trade and the trade table, and two results side by side.

The rules live in `stratbox.backtests.services.backtest_create`; its errors (the CSV's bad
rows among them, from `bars_from_csv`) land on the form field they are about.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from frontend.access import tenant_view
from frontend.selectors import markets_active
from frontend.throttling import form_throttled
from stratbox.backtests.selectors import (
    backtest_get,
    backtest_list,
    backtest_trade_list,
    dataset_get,
    dataset_list,
    market_get,
    version_get_for_tenant,
)
from stratbox.backtests.services import (
    BacktestQuotaExceeded,
    BarsSpec,
    backtest_cancel,
    backtest_create,
    bars_from_csv,
    bars_from_dataset,
)
from stratbox.instances.selectors import instance_get, instance_list
from stratbox.markets.selectors import bar_ranges
from strategies_store.selectors import strategy_list, version_list
from tenants.errors import ApplicationError, form_add_error
from tenants.throttling import BacktestCreateThrottle

# The service names logical inputs; the form has one field per thing the user touched.
FIELD_MAP = {"config": "version", "csv": "csv_file", "dataset": "dataset"}


class BacktestForm(forms.Form):
    name = forms.CharField(max_length=120, required=False, label="Name (optional)")
    instance = forms.ChoiceField(
        required=False, label="Reuse an instance's config", help_text="Its version, config and capital."
    )
    version = forms.ChoiceField(required=False, label="…or a strategy version (default config)")
    market = forms.ChoiceField(required=False, label="Market (stored bars)")
    start = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        label="From (UTC)",
        help_text="Empty: the first stored bar.",
    )
    end = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        label="To (UTC)",
        help_text="Empty: after the last stored bar.",
    )
    interval_seconds = forms.IntegerField(min_value=1, initial=60, label="Bar interval (seconds)")
    dataset = forms.ChoiceField(
        required=False,
        label="…or a stored dataset (a CSV you imported before)",
        help_text="Imported once, reused by any number of backtests.",
    )
    csv_file = forms.FileField(
        required=False,
        label="…or upload bars (CSV)",
        help_text=(
            "A time column (Date, Datetime, timestamp or ts; or a leading index column, as "
            "backtesting.py and yfinance export) and Open, High, Low, Close[, Volume]. A bad row is "
            "reported with its line; the file is stored as a dataset for later runs."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    chunk_bars = forms.IntegerField(
        min_value=10,
        max_value=200_000,
        required=False,
        label="Bars per chunk (advanced)",
        help_text="Bars streamed to the sandbox per step; progress is reported after each chunk. Default 50,000.",
    )
    starting_capital = forms.DecimalField(min_value=1, decimal_places=2, max_digits=18, required=False)
    fee_bps = forms.FloatField(min_value=0, required=False, label="Fee (bps)")
    slippage_bps = forms.FloatField(min_value=0, required=False, label="Slippage (bps)")

    def __init__(self, *args: Any, tenant: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["instance"].choices = [("", "—")] + [
            (str(i.id), f"{i.name} ({i.strategy.key} v{i.version.number})")
            for i in instance_list(tenant=tenant)
        ]
        versions = [("", "—")]
        for definition in strategy_list(tenant=tenant):
            versions += [
                (str(v.id), f"{definition.key} v{v.number}") for v in version_list(definition=definition)
            ]
        self.fields["version"].choices = versions
        self.fields["dataset"].choices = [("", "—")] + [
            (str(d.id), _dataset_label(d)) for d in dataset_list(tenant=tenant)[:200]
        ]
        # What history is stored, per market: shown in the choices, used when From/To are empty.
        self.ranges = bar_ranges()
        markets = markets_active()
        self.fields["market"].choices = [("", "—")] + [
            (str(m.id), _market_label(m, self.ranges.get(m.id))) for m in markets
        ]
        stored = next((m for m in markets if m.id in self.ranges), None)
        if stored is not None and not self.is_bound:
            first, last, _ = self.ranges[stored.id]
            self.initial.setdefault("market", str(stored.id))
            self.initial.setdefault("start", first.replace(tzinfo=None, microsecond=0))
            self.initial.setdefault("end", (last + timedelta(seconds=60)).replace(tzinfo=None, microsecond=0))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if bool(data.get("instance")) == bool(data.get("version")):
            self.add_error("version", "Choose an instance or a strategy version (one of the two).")
        if data.get("csv_file") and data.get("dataset"):
            self.add_error("dataset", "Choose a stored dataset or upload a CSV (one of the two).")
        file_bars = data.get("csv_file") or data.get("dataset")
        if not file_bars and not data.get("market") and not data.get("instance"):
            self.add_error(
                "market", "Choose a market and a date range, a stored dataset, or upload a CSV of bars."
            )
        market = data.get("market")
        stored = self.ranges.get(int(market)) if market and str(market).isdigit() else None
        if stored is not None and not file_bars:
            # An empty From / To means the whole stored range, as the form shows it.
            first, last, _ = stored
            if not data.get("start"):
                data["start"] = first
            if not data.get("end"):
                data["end"] = last + timedelta(seconds=data.get("interval_seconds") or 60)
        return data


def _dataset_label(dataset: Any) -> str:
    return (
        f"{dataset.name} — {dataset.rows:,} bars, {dataset.first_ts:%Y-%m-%d %H:%M} to "
        f"{dataset.last_ts:%Y-%m-%d %H:%M} UTC"
    )


def _market_label(market: Any, stored: tuple[Any, Any, int] | None) -> str:
    if stored is None:
        return f"{market} — no stored bars"
    first, last, count = stored
    return f"{market} — {count:,} bars, {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


@tenant_view(write=True)
def backtest_new(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    if request.method != "POST":
        initial = {"instance": request.GET.get("instance", ""), "version": request.GET.get("version", "")}
        return render(
            request, "frontend/backtests/new.html", {"form": BacktestForm(initial=initial, tenant=tenant)}
        )
    form = BacktestForm(request.POST, request.FILES, tenant=tenant)
    if form_throttled(request, BacktestCreateThrottle, form):
        return render(request, "frontend/backtests/new.html", {"form": form}, status=429)
    if form.is_valid():
        data = form.cleaned_data
        instance = instance_get(tenant=tenant, instance_id=data["instance"]) if data["instance"] else None
        version = (
            version_get_for_tenant(tenant=tenant, version_id=data["version"]) if data["version"] else None
        )
        try:
            backtest = backtest_create(
                tenant=tenant,
                actor=request.user,
                bars=_bars(request, data, instance),
                version=version,
                instance=instance,
                starting_capital=data.get("starting_capital"),
                slippage_bps=data.get("slippage_bps"),
                fee_bps=data.get("fee_bps"),
                name=data.get("name") or "",
                chunk_bars=data.get("chunk_bars"),
            )
            messages.success(request, "Backtest queued: progress updates live below.")
            return redirect("frontend:backtest_detail", backtest_id=backtest.id)
        except BacktestQuotaExceeded as exc:
            form.add_error(None, str(exc))
            return render(request, "frontend/backtests/new.html", {"form": form}, status=429)
        except ApplicationError as exc:
            form_add_error(form, exc, FIELD_MAP)
    return render(request, "frontend/backtests/new.html", {"form": form}, status=400)


def _bars(request: HttpRequest, data: dict[str, Any], instance: Any) -> BarsSpec:
    upload = data.get("csv_file")
    market_code = instance.market.code if instance is not None else "CSV"
    if upload is not None:
        return bars_from_csv(
            upload.read(),
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=request.user,
            filename=upload.name or "",
            interval_seconds=data["interval_seconds"],
            market_code=market_code,
        )
    if data.get("dataset"):
        dataset = dataset_get(tenant=request.tenant, dataset_id=data["dataset"])  # type: ignore[attr-defined]
        if dataset is None:
            raise Http404("Dataset not found.")
        return bars_from_dataset(dataset, interval_seconds=data["interval_seconds"], market_code=market_code)
    market = (
        market_get(market=data["market"]) if data.get("market") else (instance.market if instance else None)
    )
    return BarsSpec(
        market=market, start=data.get("start"), end=data.get("end"), interval_seconds=data["interval_seconds"]
    )


@tenant_view
def backtest_index(request: HttpRequest) -> HttpResponse:
    backtests = backtest_list(tenant=request.tenant).select_related("version").order_by("-created_at")[:100]  # type: ignore[attr-defined]
    return render(request, "frontend/backtests/list.html", {"backtests": backtests})


def _backtest_or_404(request: HttpRequest, backtest_id: Any) -> Any:
    backtest = backtest_get(tenant=request.tenant, backtest_id=backtest_id)  # type: ignore[attr-defined]
    if backtest is None:
        raise Http404("No such backtest.")
    return backtest


TRADES_PER_PAGE = 50
MARKER_TEXT_LIMIT = 30
MARKER_LIMIT = 100


def _chart(backtest: Any, trades: list[Any]) -> dict[str, Any]:
    """Equity points and one marker per trade entry/exit, in lightweight-charts' shapes."""
    points: list[dict[str, Any]] = []
    for ts, equity in backtest.equity_curve or []:
        t = int(ts)
        if points and points[-1]["time"] >= t:
            continue  # strictly increasing times
        points.append({"time": t, "value": float(equity)})
    markers: list[dict[str, Any]] = []
    # Many markers with labels pile into solid columns: beyond a few dozen, arrows only, and
    # beyond MARKER_LIMIT trades none at all (the paginated trade table lists them).
    labelled = len(trades) <= MARKER_TEXT_LIMIT
    for trade in trades if len(trades) <= MARKER_LIMIT else []:
        entry = {"time": int(trade.entry_ts), "position": "belowBar", "shape": "arrowUp", "color": "#1d7a3a"}
        if labelled:
            entry["text"] = "B"
        markers.append(entry)
        if trade.exit_ts:
            exit_ = {
                "time": int(trade.exit_ts),
                "position": "aboveBar",
                "shape": "arrowDown",
                "color": "#b42318",
            }
            if labelled:
                exit_["text"] = "S"
            markers.append(exit_)
    markers.sort(key=lambda m: m["time"])
    return {"points": points, "markers": markers}


@tenant_view
def backtest_detail(request: HttpRequest, backtest_id: str) -> HttpResponse:
    backtest = _backtest_or_404(request, backtest_id)
    all_trades = backtest_trade_list(backtest=backtest)
    chart = _chart(backtest, list(all_trades[: MARKER_LIMIT + 1]))
    trades_page = Paginator(all_trades, TRADES_PER_PAGE).get_page(request.GET.get("page"))
    trades = list(trades_page.object_list)
    others = (
        backtest_list(tenant=request.tenant, status="succeeded")
        .exclude(pk=backtest.pk)
        .order_by("-created_at")[:50]
    )  # type: ignore[attr-defined]
    return render(
        request,
        "frontend/backtests/detail.html",
        {
            "bt": backtest,
            "trades": trades,
            "trades_page": trades_page,
            "chart": chart,
            "others": others,
            "progress_percent": min(100, backtest.bars_done * 100 // backtest.bars_total)
            if backtest.bars_total
            else 0,
        },
    )


@require_POST
@tenant_view(write=True)
def backtest_cancel_view(request: HttpRequest, backtest_id: str) -> HttpResponse:
    backtest = _backtest_or_404(request, backtest_id)
    try:
        backtest_cancel(backtest=backtest, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Cancellation requested.")
    return redirect("frontend:backtest_detail", backtest_id=backtest.id)


@tenant_view
def backtest_compare(request: HttpRequest) -> HttpResponse:
    a = _backtest_or_404(request, request.GET.get("a"))
    b = _backtest_or_404(request, request.GET.get("b"))
    sides = []
    for bt in (a, b):
        trades = list(backtest_trade_list(backtest=bt)[:500])
        sides.append({"bt": bt, "chart": _chart(bt, trades), "trades": trades[:50]})
    # One chart, two curves: the equity of each run on the same axes.
    overlay = [
        {"name": f"{label} · {side['bt'].name or side['bt'].strategy_key}", "points": side["chart"]["points"]}
        for label, side in zip(("A", "B"), sides, strict=True)
    ]
    return render(request, "frontend/backtests/compare.html", {"sides": sides, "overlay": overlay})
