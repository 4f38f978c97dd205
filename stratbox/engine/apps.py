from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "stratbox.engine"
    label = "engine"
    verbose_name = "Engine"
