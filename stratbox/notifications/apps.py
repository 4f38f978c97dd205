from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "stratbox.notifications"
    label = "notifications"
    verbose_name = "Notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from stratbox.notifications import hooks  # once the app registry is ready: hooks import the models

        hooks.connect()
