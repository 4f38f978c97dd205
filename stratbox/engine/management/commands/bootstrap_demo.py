"""`manage.py bootstrap_demo`: idempotently install markets, the catalog, a demo tenant and a staff user."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from stratbox.engine.bootstrap import demo_bootstrap


class Command(BaseCommand):
    help = "Install markets and the built-in catalog; create the demo tenant, user and paper account."

    def handle(self, *args: Any, **options: Any) -> None:
        summary = demo_bootstrap()
        for line in summary:
            self.stdout.write(line)
