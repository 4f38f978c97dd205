"""Attack class: a timing side channel through interpreter-wide caches shared by instances of a host.

Compiling a regex that is already in ``re``'s cache (or parsing a ``strptime`` format that is in
``_strptime``'s) is measurably faster, so one instance could learn which patterns another used.
The caches are emptied whenever another instance's code is about to run; these tests drive two
real (restricted) instances in this process and look at the caches between their calls.
"""

from __future__ import annotations

import datetime
import re
import sys
import uuid

from sandbox.limits import Limits
from sandbox.runtime import Instance

TICK = {"market": "X", "ts": 1.0, "price": 1.0}

datetime.datetime.strptime("2024", "%Y")  # loads _strptime, as a host does before it confines itself


def _instance(on_tick: str) -> Instance:
    src = (
        "import re, datetime\nfrom sandbox.sdk import Strategy\n\nclass S(Strategy):\n"
        "    def on_tick(self, tick):\n        " + on_tick + "\n"
    )
    return Instance(
        f"i-{uuid.uuid4().hex[:6]}",
        style="tick",
        sources={"strategy.py": src},
        config={},
        state=None,
        seed=1,
        limits=Limits(),
    )


def _cached_patterns() -> set[str]:
    return {
        key[1] for key in re._cache if isinstance(key, tuple) and len(key) > 1 and isinstance(key[1], str)
    }  # noqa: SLF001


def test_regex_cache_is_emptied_between_instances() -> None:
    secret = "secret-" + uuid.uuid4().hex
    a = _instance(f"re.compile({secret!r})")
    b = _instance("re.compile('b+')")
    a.tick(TICK, {})
    assert secret in _cached_patterns()  # A's own calls keep a warm cache
    b.tick(TICK, {})
    assert secret not in _cached_patterns()  # ... which B can no longer time


def test_strptime_cache_is_emptied_between_instances() -> None:
    fmt = "%Y/%m/%d-" + uuid.uuid4().hex[:6]
    a = _instance(f"datetime.datetime.strptime('2024/01/02-' + {fmt[-6:]!r}, {fmt!r})")
    b = _instance("pass")
    a.tick(TICK, {})
    cache = sys.modules["_strptime"]._regex_cache  # noqa: SLF001
    assert fmt in cache
    b.tick(TICK, {})
    assert fmt not in cache


def test_one_instance_keeps_its_cache_across_calls() -> None:
    secret = "warm-" + uuid.uuid4().hex
    a = _instance(f"re.compile({secret!r})")
    a.tick(TICK, {})
    a.tick(TICK, {})
    assert secret in _cached_patterns()
    assert re.compile(secret).pattern == secret
