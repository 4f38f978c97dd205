"""Template helpers of the web UI: the caller's tenant, mode/account badges, form-field rendering."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.html import format_html

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


@register.filter
def get_field(form: Any, name: str) -> Any:
    """`form|get_field:name` — a bound field by name (for generated fields)."""
    return form[name]
