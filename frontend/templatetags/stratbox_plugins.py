"""The instance page's plugin card and the nav's inbox badge (reads through selectors/services)."""

from __future__ import annotations

from typing import Any

from django import template

from stratbox.notifications.selectors import inbox_unread_count
from stratbox.plugins.services import instance_signals

register = template.Library()


@register.inclusion_tag("frontend/plugins/_card.html")
def plugin_card(instance: Any, can_write: bool = False) -> dict[str, Any]:
    return {"instance": instance, "signals": instance_signals(instance=instance), "can_write": can_write}


@register.simple_tag
def unread_notifications(tenant: Any) -> int:
    return inbox_unread_count(tenant=tenant) if tenant is not None else 0
