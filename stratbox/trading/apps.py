from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "stratbox.trading"
    label = "trading"
    verbose_name = "Trading"
