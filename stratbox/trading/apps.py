from django.apps import AppConfig

# Beat entries (merged into the beat schedule when the app is ready): live orders in doubt are
# asked about every few seconds, so an unclear send or a killed worker is settled quickly.
BEAT_SCHEDULE = {
    "trading.live_orders_resolve": {
        "task": "trading.live_orders_resolve",
        "schedule": 10.0,
        "options": {"expires": 20},
    },
}


class TradingConfig(AppConfig):
    name = "stratbox.trading"
    label = "trading"
    verbose_name = "Trading"

    def ready(self) -> None:
        from celery import current_app

        current_app.conf.beat_schedule = {**(current_app.conf.beat_schedule or {}), **BEAT_SCHEDULE}
