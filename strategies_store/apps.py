from django.apps import AppConfig


class StrategiesStoreConfig(AppConfig):
    name = "strategies_store"
    verbose_name = "Strategy store"
