from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from tenants import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from tenants.access_events import on_user_logged_out

        # A logout ends the session's websockets at once (tenants.access_events).
        user_logged_out.connect(on_user_logged_out, dispatch_uid="tenants.access_events.logout")
