"""``python tests/engine/forged_worker.py <celery arguments>``: a real Celery worker whose sandbox
hosts are forged (`tests/engine/forged_host.py`). Test-only: it sets the client's boot line before
Celery starts, so the worker and every pool process it forks spawn forged hosts; nothing in the
platform reads or knows it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, as `-m celery` has it

import sandbox.client  # noqa: E402
from tests.engine.forged_host import forged_boot  # noqa: E402

sandbox.client.BOOT = forged_boot(sandbox.client.BOOT)

if __name__ == "__main__":
    from celery.__main__ import main

    sys.argv[0] = "celery"
    sys.exit(main())
