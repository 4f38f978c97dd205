"""A worker process for the restart scenarios: place one live order through `order_place`, then exit.

Run by tests/venues/test_live_restart.py against the test database and a loopback venue; the test
SIGKILLs it while it waits between the journal and the send, or while the venue holds its send.
Arguments: instance id, the intent (JSON), the quote (JSON).
"""

from __future__ import annotations

import json
import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stratbox.settings")
    django.setup()
    from django.utils import timezone

    from stratbox.instances.models import StrategyInstance
    from stratbox.trading.services.orders import order_place

    instance = StrategyInstance.objects.get(pk=sys.argv[1])
    print("placing", flush=True)
    result = order_place(
        instance=instance,
        intent=json.loads(sys.argv[2]),
        quote=json.loads(sys.argv[3]),
        mode="active",
        now=timezone.now(),
    )
    print("placed", result.status, flush=True)


if __name__ == "__main__":
    main()
