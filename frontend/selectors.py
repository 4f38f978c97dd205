"""Reads the web UI needs that no lower app offers (yet), each scoped to the tenant it serves.

Delegates to the owning app's selectors and services (engine runtime status, trading stats, the
store's versions); what is composed here is presentation-shaped: one row per instance for the
list, the performance block and equity curve of the detail page, a page of runs, a version diff.
Runtime status lives in Redis: when Redis is unreachable the pages still render, with the status
shown as unknown, rather than failing with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.paginator import Page, Paginator
from django.utils import timezone

from stratbox.engine.models import RunStatus, RunTrigger
from stratbox.engine.selectors import run_list, runtime_status
from stratbox.governance.selectors import (
    backtests_for,
    live_approval_is_current,
    live_request_latest,
    staff_live_request_get,
    staff_live_request_queue,
)
from stratbox.governance.services import instance_graduation
from stratbox.instances.selectors import instance_list
from stratbox.markets.selectors import market_list
from stratbox.trading.selectors import account_list, fill_list, instance_daily_pnl, instance_stats, order_list
from stratbox.trading.track_record import instance_track_record
from strategies_store.diffs import unified_diff
from strategies_store.selectors import version_previous
from strategies_store.serializers import version_files
from tenants.errors import ApplicationError
from tenants.models import Tenant

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
RUNS_PER_PAGE = 20


def accounts_for_tenant(*, tenant: Tenant) -> list[Any]:
    return list(account_list(tenant=tenant).order_by("kind", "name"))


def markets_active() -> list[Any]:
    return list(market_list().filter(active=True).order_by("venue", "symbol"))


# --- instances ------------------------------------------------------------------------------


def instance_runtime(*, instance: Any) -> dict[str, Any]:
    """The engine's runtime status, or an "unknown" status when Redis cannot be reached."""
    try:
        return runtime_status(instance=instance)
    except Exception:  # Redis down: the page must still render and say so
        logger.warning("runtime status of %s unavailable", instance.pk, exc_info=True)
        return {
            "instance_id": str(instance.pk),
            "mode": instance.mode,
            "loaded": False,
            "paused": False,
            "pause_reason": None,
            "unknown": True,
            "last_error": None,
            "next_due_at": None,
            "frequency_seconds": instance.frequency_seconds,
            "trigger": instance.trigger,
            "stats": {"runs": 0, "ok": 0, "failed": 0},
        }


def _pnl(instance: Any, *, today: bool = False) -> dict[str, Any]:
    """Real P&L once the instance has real orders; until then its shadow (observe) P&L, labelled so.
    With `today`, also today's (UTC) P&L of the same ledger."""
    real = instance_stats(instance=instance, shadow=False)
    shadow = real["orders"] == 0
    stats = instance_stats(instance=instance, shadow=True) if shadow else real
    total = Decimal(stats["realized_pnl"]) + Decimal(stats["unrealized_pnl"])
    pnl = {"total": total, "shadow": shadow, "stats": stats}
    if today:
        pnl["today"] = instance_daily_pnl(instance=instance, day=timezone.now().date(), shadow=shadow)
    return pnl


def instance_rows(*, tenant: Tenant) -> list[dict[str, Any]]:
    """One row per instance for the list page: identity, mode, runtime status, run counters, P&L
    (total and today's)."""
    rows = []
    for instance in instance_list(tenant=tenant).order_by("-created_at"):
        rows.append(
            {
                "instance": instance,
                "runtime": instance_runtime(instance=instance),
                "pnl": _pnl(instance, today=True),
            }
        )
    return rows


def tenant_day_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The strip above the instances: today's and total P&L of the instances trading for real
    (shadow P&L is not money), and how many instances run, are paused, are off."""
    real = [row for row in rows if not row["pnl"]["shadow"]]
    return {
        "today": sum((row["pnl"]["today"] for row in real), ZERO),
        "total": sum((row["pnl"]["total"] for row in real), ZERO),
        "running": sum(
            1 for row in rows if row["instance"].mode != "off" and not row["runtime"].get("paused")
        ),
        "paused": sum(1 for row in rows if row["instance"].mode != "off" and row["runtime"].get("paused")),
        "off": sum(1 for row in rows if row["instance"].mode == "off"),
        "count": len(rows),
    }


@dataclass
class Performance:
    shadow: bool
    record: Any  # trading.track_record.TrackRecord: the one track-record computation
    pnl: Decimal  # the ledger's whole P&L: the trades' plus what is still open
    equity: list[dict[str, Any]]  # [{"time": unix seconds, "value": float}]
    markers: list[dict[str, Any]]  # lightweight-charts markers, one per fill

    @property
    def drawdown(self) -> Decimal:
        return self.record.max_drawdown


MARKER_TEXT_LIMIT = 30  # more markers than this carry no text: labels would pile into columns


def instance_performance(*, tenant: Tenant, instance: Any) -> Performance:
    """The Performance card: the instance's track record (the same computation the graduation box,
    the API and the staff review use), its equity curve stepped at every fill, and fill markers."""
    shadow = _pnl(instance)["shadow"]
    record = instance_track_record(instance=instance, shadow=shadow)
    fills = list(
        fill_list(tenant=tenant)
        .filter(instance=instance, is_shadow=shadow)
        .order_by("-ts", "-id")
        .values("ts", "side", "qty", "price")[:2000]
    )[::-1]
    curve = record.equity_curve  # [(since, base), (trade time, equity), ...]
    points: list[dict[str, Any]] = []
    markers: list[dict[str, Any]] = []
    last_time = 0
    j = 0
    value = curve[0][1] if curve else Decimal(instance.total_capital)
    for fill in fills:
        while j < len(curve) and curve[j][0] <= fill["ts"]:
            value = curve[j][1]
            j += 1
        # lightweight-charts needs strictly increasing times: fills within one second share a point.
        t = max(int(fill["ts"].timestamp()), last_time)
        if points and points[-1]["time"] == t:
            points[-1]["value"] = float(value)
        else:
            points.append({"time": t, "value": float(value)})
        last_time = t
        buy = fill["side"] == "buy"
        marker = {
            "time": t,
            "position": "belowBar" if buy else "aboveBar",
            "shape": "arrowUp" if buy else "arrowDown",
            "color": "#1d7a3a" if buy else "#b42318",
        }
        if len(fills) <= MARKER_TEXT_LIMIT:
            marker["text"] = (
                f"{'B' if buy else 'S'} {fill['qty'].normalize():f} @ {_price_text(fill['price'], instance)}"
            )
        markers.append(marker)
    return Performance(
        shadow=shadow,
        record=record,
        pnl=record.pnl + (record.open_pnl or ZERO),
        equity=points,
        markers=markers,
    )


def _price_text(price: Decimal, instance: Any) -> str:
    """A price at its market's precision (tick size), with thousands separators."""
    tick = Decimal(instance.market.tick_size).normalize()
    places = max(0, -tick.as_tuple().exponent) if tick > 0 else 2
    return f"{price:,.{places}f}"


CANDLE_SECONDS = 30


def instance_market_candles(*, tenant: Tenant, instance: Any) -> dict[str, Any]:
    """Candles (30 s) of the instance's market from its recent quotes, and a marker per fill of the
    instance in that window (its current ledger), for lightweight-charts."""
    from stratbox.markets.quotes import quote_history
    from stratbox.trading.selectors import fill_list

    candles: list[dict[str, Any]] = []
    for ts, price in quote_history(instance.market_id):
        bucket = int(ts) // CANDLE_SECONDS * CANDLE_SECONDS
        if candles and candles[-1]["time"] == bucket:
            c = candles[-1]
            c["high"] = max(c["high"], price)
            c["low"] = min(c["low"], price)
            c["close"] = price
        elif not candles or bucket > candles[-1]["time"]:
            candles.append({"time": bucket, "open": price, "high": price, "low": price, "close": price})
    markers: list[dict[str, Any]] = []
    if candles:
        shadow = instance.mode != "active"
        since = datetime.fromtimestamp(candles[0]["time"], tz=UTC)
        for fill in (
            fill_list(tenant=tenant)
            .filter(instance=instance, is_shadow=shadow, ts__gte=since)
            .order_by("ts", "id")
            .values("ts", "side", "qty", "price")[:500]
        ):
            buy = fill["side"] == "buy"
            markers.append(
                {
                    "time": int(fill["ts"].timestamp()) // CANDLE_SECONDS * CANDLE_SECONDS,
                    "position": "belowBar" if buy else "aboveBar",
                    "shape": "arrowUp" if buy else "arrowDown",
                    "color": "#1d7a3a" if buy else "#b42318",
                    "text": f"{'B' if buy else 'S'} {_price_text(fill['price'], instance)}",
                }
            )
        if len(markers) > MARKER_TEXT_LIMIT:
            for marker in markers:
                marker.pop("text")
    return {"candles": candles, "markers": markers, "seconds": CANDLE_SECONDS}


def instance_open_positions(*, tenant: Tenant, instance: Any) -> list[dict[str, Any]]:
    """The instance's open positions in the ledger it trades (real when active, else shadow), marked
    to the market's current quote."""
    from stratbox.markets.quotes import quote_get
    from stratbox.trading.models import Position
    from stratbox.trading.selectors import position_unrealized_pnl

    shadow = instance.mode != "active"
    quote = quote_get(instance.market_id) or {}
    mark = Decimal(str(quote["price"])) if quote.get("price") is not None else None
    rows = []
    for position in Position.objects.filter(
        tenant=tenant, instance=instance, is_shadow=shadow, closed_at__isnull=True
    ).order_by("opened_at"):
        rows.append(
            {
                "id": position.pk,
                "qty": position.qty,
                "avg_price": _price_text(position.avg_price, instance),
                "mark": _price_text(mark, instance) if mark is not None else None,
                "unrealized": position_unrealized_pnl(position, mark) if mark is not None else None,
                "opened_at": position.opened_at,
                "shadow": position.is_shadow,
            }
        )
    return rows


def instance_actions(*, tenant: Tenant, instance: Any, limit: int = 30) -> list[dict[str, Any]]:
    """The most recent orders of the instance (real, shadow and denied), newest first, shaped like
    the engine's `action` events so the page renders server rows and pushed rows the same way."""
    rows = []
    for order in order_list(tenant=tenant).filter(instance=instance).order_by("-created_at")[:limit]:
        if order.is_shadow:
            kind = "shadow"
        elif order.status == "rejected":
            kind = "denied"
        else:
            kind = "order"
        rows.append(
            {
                "kind": kind,
                "side": order.side,
                "qty": order.qty.normalize(),
                "type": order.type,
                "price": _price_text(order.fill_price or order.limit_price, instance)
                if (order.fill_price or order.limit_price) is not None
                else None,
                "status": order.status,
                "deny_code": order.deny_code if kind == "denied" else "",
                "message": order.deny_reason if kind == "denied" else "",
                "client_order_id": order.client_order_id,
                "tag": order.tag,
                "at": order.created_at,
            }
        )
    return rows


@dataclass
class RunsPage:
    page: Page
    status: str
    trigger: str
    error: str
    status_choices: list[tuple[str, str]]
    trigger_choices: list[tuple[str, str]]


def instance_runs(
    *, tenant: Tenant, instance: Any, params: Mapping[str, Any], per_page: int = RUNS_PER_PAGE
) -> RunsPage:
    """A page of the instance's execution history, filtered by status/trigger (bad values ignored,
    with a message, rather than a 400: this is a page, not the API)."""
    status = str(params.get("status") or "")
    trigger = str(params.get("trigger") or "")
    filters = {"instance": str(instance.pk)}
    if status:
        filters["status"] = status
    if trigger:
        filters["trigger"] = trigger
    error = ""
    try:
        queryset = run_list(tenant=tenant, filters=filters)
    except ApplicationError:
        error = "Unknown filter value; showing all runs."
        status = trigger = ""
        queryset = run_list(tenant=tenant, filters={"instance": str(instance.pk)})
    paginator = Paginator(queryset.order_by("-started_at", "-id"), per_page)
    page = paginator.get_page(params.get("page") or 1)
    return RunsPage(
        page=page,
        status=status,
        trigger=trigger,
        error=error,
        status_choices=list(RunStatus.choices),
        trigger_choices=list(RunTrigger.choices),
    )


def governance_status(*, tenant: Any, instance: Any) -> dict[str, Any] | None:
    """The instance's latest live-trading request, shaped for the detail page's notice."""
    request = live_request_latest(tenant=tenant, instance=instance)
    if request is None:
        return None
    revoked = request.revoked_at is not None
    live = request.live_instance
    return {
        "status": "revoked" if revoked else request.status,
        "decided_at": request.revoked_at if revoked else request.decided_at,
        "reason": request.revoke_reason if revoked else request.decision_reason,
        "requested_at": request.requested_at,
        # The paper page links to the live instance an approval created (the live page is it).
        "live_instance": live if live is not None and live.pk != instance.pk else None,
    }


# --- governance: graduation panel and the staff queue ---------------------------------------

# What each graduation criterion measures, for the panel's first column (the code stays visible).
CRITERION_LABELS = {
    "TOO_FEW_TRADES": "Paper trades",
    "WIN_RATE_TOO_LOW": "Win rate (%)",
    "PNL_NOT_POSITIVE": "P&L",
    "PNL_TOO_LOW": "P&L",
    "DRAWDOWN_TOO_HIGH": "Max drawdown (%)",
}


def _record_view(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A track-record JSON (governance's shape) with `since`/`last_trade_at` as datetimes."""
    if record is None:
        return None
    return {
        **record,
        "since": iso_to_datetime(record.get("since")),
        "last_trade_at": iso_to_datetime(record.get("last_trade_at")),
    }


def _criteria_view(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "label": CRITERION_LABELS.get(str(c.get("code")), str(c.get("code")))} for c in results]


def graduation_panel(*, tenant: Tenant, instance: Any) -> dict[str, Any] | None:
    """The paper instance's track record (paper, and shadow marked as such) against the tenant's
    graduation policy, each criterion met/unmet with its value, and the tenant's live accounts for
    the request form. None for an instance on a live account (it has no graduation to earn)."""
    if instance.account.kind != "paper":
        return None

    data = instance_graduation(instance)
    return {
        "record": _record_view(data["record"]),
        "shadow": _record_view(data["shadow_record"]),
        "policy": data["policy"],
        "criteria": _criteria_view(data["criteria"]),
        "eligible": data["eligible"],
        "live_accounts": [a for a in accounts_for_tenant(tenant=tenant) if a.kind == "live"],
    }


@dataclass
class StaffRequestRow:
    request: Any
    paper: dict[str, Any] | None  # the paper record snapshotted at request time
    criteria: list[dict[str, Any]]
    criteria_met: bool
    backtests: list[Any]


def _staff_row(request: Any, backtests: list[Any]) -> StaffRequestRow:
    snapshot = request.track_record or {}
    criteria = _criteria_view((request.criteria or {}).get("results", []))
    return StaffRequestRow(
        request=request,
        paper=_record_view(snapshot.get("paper")),
        criteria=criteria,
        criteria_met=bool(criteria) and all(c.get("met") for c in criteria),
        backtests=backtests,
    )


def staff_queue(*, status: str | None = None, limit: int = 200) -> list[StaffRequestRow]:
    """Every tenant's live-trading requests, pending first, each with its evidence (staff only:
    the caller checks `is_staff`)."""
    return [
        _staff_row(request, backtests_for(request, limit=5))
        for request in staff_live_request_queue(status=status)[:limit]
    ]


def staff_request_detail(*, request_id: Any) -> dict[str, Any] | None:
    """One request for the reviewer: its snapshots, the code, today's graduation, the backtests."""
    request = staff_live_request_get(request_id=request_id)
    if request is None:
        return None
    current = instance_graduation(request.instance) if request.instance is not None else None
    snapshot = request.track_record or {}
    return {
        "row": _staff_row(request, backtests_for(request)),
        "shadow": _record_view(snapshot.get("shadow")),
        "policy": (request.criteria or {}).get("policy", {}),
        "current": {
            "record": _record_view(current["record"]),
            "criteria": _criteria_view(current["criteria"]),
            "eligible": current["eligible"],
        }
        if current
        else None,
        "approval_current": request.status == "approved"
        and request.live_instance is not None
        and live_approval_is_current(request.live_instance),
    }


# --- strategies -----------------------------------------------------------------------------


def version_diff(*, version: Any) -> dict[str, Any]:
    """Unified diff of each file of `version` against the previous version (as the store's diff API)."""
    base = version_previous(version)
    old_files = version_files(base) if base else {}
    files = []
    for name, new in version_files(version).items():
        old = old_files.get(name, "")
        text = unified_diff(
            old,
            new,
            fromfile=f"v{base.number}/{name}" if base else "/dev/null",
            tofile=f"v{version.number}/{name}",
            keepends=False,
        )
        lines = text.split("\n") if text else []
        files.append(
            {
                "name": name,
                "changed": old != new,
                "lines": [
                    {
                        "text": line,
                        "kind": "meta"
                        if line.startswith(("---", "+++", "@@"))
                        else ("add" if line.startswith("+") else ("del" if line.startswith("-") else "ctx")),
                    }
                    for line in lines
                ],
            }
        )
    return {"base": base, "files": files}


def iso_to_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
