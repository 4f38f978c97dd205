"""The API's throttles applied to the HTML forms that do the same work.

A form that uploads a strategy, issues a token or queues a backtest spends the same per-user budget
as the matching API call (the same DRF throttle class, so the same cache key): a user cannot go
around the API's limit through the pages.
"""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.http import HttpRequest


def form_throttled(request: HttpRequest, throttle_class: type, form: forms.BaseForm | None = None) -> bool:
    """True (and a non-field error on `form`) when the request is over `throttle_class`'s rate."""
    throttle = throttle_class()
    if throttle.allow_request(request, None):
        return False
    wait: Any = throttle.wait()
    seconds = max(1, math.ceil(wait)) if wait is not None else None
    if form is not None:
        form.add_error(
            None,
            "Too many requests: try again"
            + (f" in {seconds} s." if seconds is not None else " later.")
            + " (The API and these forms share one limit.)",
        )
    return True
