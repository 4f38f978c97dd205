"""Concurrent uploads to one strategy get distinct consecutive numbers; identical ones collapse."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from strategies_store.models import StrategyVersion
from strategies_store.services import DuplicateVersion, version_create
from tests.strategies_store.conftest import TICK_OK


@pytest.mark.django_db(transaction=True)
def test_parallel_uploads_number_without_gaps_or_duplicates(tick_strategy: Any, user: Any) -> None:
    sources = [TICK_OK + f"\n# variant {i}\n" for i in range(4)] + [TICK_OK + "\n# same\n"] * 2
    outcomes: list[str] = []
    barrier = threading.Barrier(len(sources))

    def upload(source: str) -> None:
        try:
            barrier.wait()
            version_create(definition=tick_strategy, author=user, source=source)
            outcomes.append("created")
        except DuplicateVersion:
            outcomes.append("duplicate")
        finally:
            connection.close()

    threads = [threading.Thread(target=upload, args=(s,)) for s in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    numbers = sorted(
        StrategyVersion.objects.filter(definition=tick_strategy).values_list("number", flat=True)
    )
    # "same" is created once; the second identical upload is a duplicate only if it follows directly,
    # otherwise it is a new version (a revert): either way numbers are 1..n without gaps.
    assert numbers == list(range(1, len(numbers) + 1))
    assert outcomes.count("created") == len(numbers) - 1
    assert len(outcomes) == len(sources)
