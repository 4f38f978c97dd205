"""The API's one pagination: limit/offset with bounds, so no query string can reach the database raw.

DRF's LimitOffsetPagination passes any positive offset to SQL; one past PostgreSQL's bigint range is
a 500. Offsets are clamped (a page past the end is simply empty) and limits capped.
"""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_OFFSET = 2**31 - 1


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 500

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
