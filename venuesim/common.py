"""What every protocol app does around a request: count it, rate-limit it, apply a queued fault.

A protocol app gives `guard` its own error bodies (`ErrorBodies`), so a 429 or a 5xx carries the
venue's real shape. `timeout_after_accept` runs the handler (the venue accepts the order) and
answers only after `fault.delay` seconds, later than the client's timeout: the client cannot tell
whether the order exists, which is the case a platform must resolve by asking, never by resending.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from venuesim.engine import Account, Venue


@dataclass
class ErrorBodies:
    rate_limited: Callable[[int], tuple[int, dict[str, Any]]]
    server_error: Callable[[], tuple[int, dict[str, Any]]]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, default=_default), status_code=status, headers=headers, media_type="application/json"
    )


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot encode {type(value).__name__}")


def dec(value: Decimal | None) -> str | None:
    """A decimal as the venue's plain string ("12.5", never "1.25E+1")."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return text


async def guard(
    venue: Venue,
    request: Request,
    account: Account,
    errors: ErrorBodies,
    handler: Callable[[], Awaitable[Response]],
) -> Response:
    venue.requests.append((account.api_key, request.method, request.url.path))
    if venue.over_limit(account.api_key):
        retry_after = max(1, math.ceil(venue.rate_window))
        status, body = errors.rate_limited(retry_after)
        return json_response(status, body, {"Retry-After": str(retry_after)})
    fault = venue.take_fault(request.method, request.url.path)
    if fault is not None and fault.kind == "rate_limit":
        status, body = errors.rate_limited(fault.retry_after)
        return json_response(status, body, {"Retry-After": str(fault.retry_after)})
    if fault is not None and fault.kind == "error_5xx":
        status, body = errors.server_error()
        return json_response(status, body)
    response = await handler()
    if fault is not None and fault.kind == "timeout_after_accept":
        await asyncio.sleep(fault.delay)
    return response
