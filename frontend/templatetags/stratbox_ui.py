"""Template helpers of the web UI: the caller's tenant, mode/account badges, form-field rendering."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html

from stratbox.engine.control import PAUSE_LABELS
from stratbox.trading.risk import deny_label
from tenants.scoping import membership_for_request

register = template.Library()

MODE_LABELS = {"off": "Off", "observe": "Observe", "active": "Active"}


@register.simple_tag(takes_context=True)
def current_membership(context: template.Context) -> Any:
    """The membership the page acts under (cached on the request: the nav asks on every page)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return None
    if not hasattr(request, "_stratbox_membership"):
        request._stratbox_membership = membership_for_request(request)
    return request._stratbox_membership


@register.simple_tag
def mode_badge(mode: str) -> str:
    label = MODE_LABELS.get(mode, mode)
    return format_html(
        '<span class="badge mode-{}" title="Mode: {}" data-mode="{}">{}</span>', mode, label, mode, label
    )


@register.simple_tag
def account_badge(kind: str) -> str:
    label = "LIVE" if kind == "live" else "PAPER"
    return format_html(
        '<span class="badge account-{}" title="{} account">{}</span>', kind, label.title(), label
    )


@register.filter
def field_type(bound_field: Any) -> str:
    """The widget's input type, so templates can lay out checkboxes differently."""
    return (
        getattr(bound_field.field.widget, "input_type", "")
        or bound_field.field.widget.__class__.__name__.lower()
    )


@register.inclusion_tag("frontend/partials/field.html")
def form_field(bound_field: Any, help_html: str = "") -> dict[str, Any]:
    """One labelled form field with its help text and its own errors (linked by aria-describedby)."""
    return {"field": bound_field, "help_html": help_html}


@register.filter(name="deny_label")
def deny_label_filter(code: str) -> str:
    """`code|deny_label` — how a deny code reads to a person (empty for an unknown code)."""
    return deny_label(code)


@register.filter
def get_field(form: Any, name: str) -> Any:
    """`form|get_field:name` — a bound field by name (for generated fields)."""
    return form[name]


@register.inclusion_tag("frontend/partials/status.html")
def run_status(runtime: dict[str, Any], mode: str) -> dict[str, Any]:
    """Running / paused (+ reason) / error / off — one pill, updated live by the page's JS."""
    if runtime.get("unknown"):
        state = "unknown"
    elif mode == "off":
        state = "off"
    elif runtime.get("paused"):
        state = "paused"
    elif runtime.get("last_error") and runtime.get("consecutive_failures"):
        state = "error"
    elif runtime.get("loaded"):
        state = "running"
    else:
        state = "starting"
    reason = runtime.get("pause_reason") or ""
    return {
        "state": state,
        "reason": reason,
        "reason_label": PAUSE_LABELS.get(reason, ""),
        "error": runtime.get("last_error") or {},
    }


PAUSED_BANNER = "Paused — frozen by the engine: no ticks, no orders reach the broker until it is resumed."


@register.inclusion_tag("frontend/partials/mode_banner.html")
def mode_banner(mode: str, account_kind: str, paused: bool = False) -> dict[str, Any]:
    """The unmistakable statement of what an instance may do: off, observe, or active on paper/live —
    and, while paused, that it does nothing at all whatever its mode."""
    running_text = _mode_text(mode, account_kind)
    text = PAUSED_BANNER if paused and mode != "off" else running_text
    return {
        "mode": mode,
        "kind": account_kind,
        "text": text,
        "running_text": running_text,
        "paused_text": PAUSED_BANNER,
        "paused": paused and mode != "off",
    }


def _mode_text(mode: str, account_kind: str) -> str:
    if mode == "off":
        text = "Off — not loaded: no ticks, no orders."
    elif mode == "observe":
        text = "Observe — the strategy thinks; orders are recorded as shadow orders and never sent."
    elif account_kind == "live":
        text = "Active on a LIVE account — orders reach the exchange with real money (after risk checks)."
    else:
        text = "Active on a paper account — orders reach the simulated broker (after risk checks)."
    return text


@register.filter
def signed(value: Any, places: int = 2) -> str:
    """A money amount with an explicit sign: +12.30 / -4.00 / 0.00."""
    from decimal import Decimal, InvalidOperation

    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return "—"
    text = f"{abs(number):,.{int(places)}f}"
    if number > 0:
        return f"+{text}"
    if number < 0:
        return f"−{text}"
    return text


@register.filter
def percent(value: Any, places: int = 2) -> str:
    """A fraction (0.1234) as a percentage: "12.34 %". Every percentage in the UI has two places."""
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value) * 100:.{int(places)}f} %"
    except (TypeError, ValueError):
        return "—"


@register.filter
def pct(value: Any, places: int = 2) -> str:
    """A value already in percent (a track record's 66.6667) as "66.67 %", like `percent`."""
    if value is None or value == "":
        return "—"
    try:
        return f"{float(value):.{int(places)}f} %"
    except (TypeError, ValueError):
        return "—"


@register.filter
def epoch(value: Any) -> Any:
    """Unix seconds (a bar's or a trade's timestamp) as an aware UTC datetime, for `|date`."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@register.filter
def isodate(value: Any) -> Any:
    """An ISO 8601 string (the runtime's times) as a datetime, for `|date` (no microseconds shown)."""
    from django.utils.dateparse import parse_datetime

    if not value or not isinstance(value, str):
        return value
    try:
        return parse_datetime(value)
    except ValueError:
        return None


@register.filter
def num(value: Any) -> str:
    """A quantity or price without trailing zeros, thousands grouped: 60,123.45 · 0.0008."""
    from decimal import Decimal, InvalidOperation

    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        value = round(value, 8)  # a float's binary tail (182.69129999999998) is not a price
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not number.is_finite():
        return str(value)
    text = f"{number.normalize():,f}"
    return text


@register.filter
def sign_class(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "pos" if number > 0 else ("neg" if number < 0 else "")


@register.filter
def to_json(value: Any) -> str:
    """Compact, key-sorted JSON for showing a config snapshot as text (auto-escaped by the template)."""
    return json.dumps(value, sort_keys=True, separators=(", ", ": "), default=str)
