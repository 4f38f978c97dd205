"""Governance: paper track record, graduation criteria, staff approval of live trading."""

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "stratbox.governance"
    label = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # Trading sits below governance and cannot import it: hand the risk gate our checker
        # (imported here, once the app registry is ready).
        from stratbox.governance.selectors import live_approval_is_current
        from stratbox.trading.risk import set_live_approval_checker  # (as above)

        set_live_approval_checker(live_approval_is_current)
