from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "stratbox.governance"
    label = "governance"
    verbose_name = "Governance"
