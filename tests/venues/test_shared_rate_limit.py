"""Two worker processes on one venue account stay within the venue's limit through the shared bucket.

The loopback venue answers 429 past 5 requests a second per key; both processes are configured
for 3 a second (burst 1) on the account, so together they must never see a 429, and every request arrives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from django.conf import settings as django_settings

from tests.venues.conftest import SimVenue

_WORKER = """
import django, os, sys
django.setup()
from stratbox.venues.registry import adapter_build
import json
adapter = adapter_build(sys.argv[1], json.loads(sys.argv[2]))
for _ in range(int(sys.argv[4])):
    adapter.quotes([sys.argv[3]])
print("done")
"""


def test_two_processes_share_one_accounts_budget(sim: SimVenue, settings: Any) -> None:
    sim.venue.rate_limit, sim.venue.rate_window = 5, 1.0
    # A token bucket admits up to burst + rate x window requests in any window: 1 + 3 < 5.
    config = {**sim.config, "rate_per_second": 3, "burst": 1}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "stratbox.settings",
        "REDIS_URL": django_settings.REDIS_URL,
        "STRATBOX_VENUES": json.dumps({sim.name: config}),
    }
    per_process = 12
    args = [
        sys.executable,
        "-c",
        _WORKER,
        sim.name,
        json.dumps(sim.credentials),
        sim.symbol,
        str(per_process),
    ]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert out.strip().endswith("done")
    quote_reads = [r for r in sim.venue.requests if "quotes" in r[2] or "bookTicker" in r[2]]
    assert len(quote_reads) == 2 * per_process
    assert sim.venue.rate_limited == 0
