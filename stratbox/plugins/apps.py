from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "stratbox.plugins"
    label = "plugins"
    verbose_name = "Strategy plugins"
    default_auto_field = "django.db.models.BigAutoField"
