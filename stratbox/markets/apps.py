from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "stratbox.markets"
    label = "markets"
    verbose_name = "Markets"
