from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "stratbox.backtests"
    label = "backtests"
    verbose_name = "Backtests"
